use std::os::unix::fs::PermissionsExt;

use super::*;

/// A store opened as the engine opens it (lock holder, writer set up).
fn opened(dir: &Path) -> (Store, Stored) {
    let mut store = Store::open(dir).unwrap();
    let loaded = store.load_recovering().unwrap();
    (store, loaded.stored)
}

/// One push: intent, commit, and the compaction the engine makes after the answer if due;
/// `cur` becomes the next state.
fn push(store: &mut Store, cur: &mut Stored, state: DesiredState) {
    let next = Stored {
        generation: cur.generation + 1,
        committed_at: cur.committed_at + 1,
        state,
    };
    store.write_next(cur, &next).unwrap();
    assert!(store.has_next());
    store.commit_next(&next).unwrap();
    assert!(!store.has_next());
    store.compact_if_due(&next);
    *cur = next;
}

fn commit(store: &mut Store, cur: &mut Stored, generation: u64) {
    let mut s = cur.state.clone();
    s.policy_index
        .insert(format!("eth{generation}"), generation as u32);
    push(store, cur, s);
}

/// A state with `n` port forwards whose ports start at `base`.
fn forwards(n: u32, base: u32) -> DesiredState {
    let pf: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({"public_ip": "192.0.2.11", "protocol": "tcp",
                "public_ports": base + i, "private_ip": "10.1.1.10", "private_ports": 80})
        })
        .collect();
    serde_json::from_value(serde_json::json!({"nat": {"port_forwards": pf}})).unwrap()
}

#[test]
fn empty_dir_loads_generation_zero_and_modes_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let (mut store, mut cur) = opened(&dir);
    assert_eq!(store.load().unwrap().generation, 0);
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    commit(&mut store, &mut cur, 1);
    assert_eq!(store.load().unwrap(), cur);
    store.compact(&cur).unwrap();
    for p in [
        store.current_path(),
        store.journal_path(),
        store.good_path(),
    ] {
        let mode = fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", p.display());
    }
    assert_eq!(store.load().unwrap(), cur);
}

#[test]
fn discarded_next_leaves_old_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, mut cur) = opened(tmp.path());
    commit(&mut store, &mut cur, 1);
    let next = Stored {
        generation: 2,
        ..Default::default()
    };
    store.write_next(&cur, &next).unwrap();
    // Not committed: readers see generation 1; a restart finds the push interrupted.
    assert_eq!(store.load().unwrap(), cur);
    let (again, _) = opened(tmp.path());
    assert!(again.has_next());
    assert_eq!(again.load_next().unwrap(), next);
    drop(again);
    store.discard_next().unwrap();
    assert!(!store.has_next());
    let (again, loaded) = opened(tmp.path());
    assert!(!again.has_next());
    assert_eq!(loaded, cur);
}

#[test]
fn lock_is_exclusive() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let held = store.lock(false).unwrap();
    assert!(matches!(store.lock(false), Err(StoreError::Locked(_))));
    drop(held);
    store.lock(false).unwrap();
}

#[test]
fn unreadable_state_falls_back_to_the_last_known_good_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, mut cur) = opened(tmp.path());
    commit(&mut store, &mut cur, 1);
    store.compact(&cur).unwrap();
    // A record after the compaction: the copy plus the journal give generation 2.
    commit(&mut store, &mut cur, 2);
    let ok = store.load_recovering().unwrap();
    assert_eq!((ok.stored.generation, ok.problem), (2, None));
    let full = fs::read(store.current_path()).unwrap();
    // Truncated, garbage, and written by a newer version.
    for bad in [
        full[..full.len() / 2].to_vec(),
        Vec::new(),
        b"\x00\xff garbage".to_vec(),
        br#"{"generation":3,"format":2,"state":{}}"#.to_vec(),
    ] {
        fs::write(store.current_path(), &bad).unwrap();
        let l = Store::open(tmp.path()).unwrap().load_recovering().unwrap();
        assert!(l.from_good);
        assert_eq!(l.stored, cur);
        let p = l.problem.unwrap();
        assert!(p.contains("state.json") && p.contains("state.good"), "{p}");
        assert_eq!(fs::read(store.corrupt_path()).unwrap(), bad);
    }
    let (mut store, mut cur) = opened(tmp.path());
    assert!(Store::open(tmp.path())
        .unwrap()
        .load_recovering()
        .unwrap()
        .problem
        .unwrap()
        .contains("newer vr-agent"));
    // The next commit writes a readable state.json again.
    commit(&mut store, &mut cur, 3);
    let l = Store::open(tmp.path()).unwrap().load_recovering().unwrap();
    assert_eq!((l.stored.generation, l.problem), (3, None));
    assert_eq!(replay::read_snapshot(&store.current_path()).unwrap(), cur);
    // Without a usable copy: the empty state, said so.
    fs::write(store.current_path(), b"{").unwrap();
    fs::write(store.good_path(), b"{").unwrap();
    let l = Store::open(tmp.path()).unwrap().load_recovering().unwrap();
    assert!(!l.from_good);
    assert_eq!(l.stored.generation, 0);
    assert!(l.problem.unwrap().contains("empty state"));
}

#[test]
fn a_missing_copy_is_made_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, mut cur) = opened(tmp.path());
    commit(&mut store, &mut cur, 1);
    store.compact(&cur).unwrap();
    fs::remove_file(store.good_path()).unwrap();
    Store::open(tmp.path()).unwrap().load_recovering().unwrap();
    assert_eq!(
        fs::read(store.good_path()).unwrap(),
        fs::read(store.current_path()).unwrap()
    );
    let mode = fs::metadata(store.good_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn corrupt_state_is_an_error_not_a_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    fs::write(store.current_path(), b"{not json").unwrap();
    assert!(matches!(store.load(), Err(StoreError::Corrupt(..))));
}

#[test]
fn one_forward_added_to_a_long_list_is_a_one_element_record() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, mut cur) = opened(tmp.path());
    push(&mut store, &mut cur, forwards(2000, 1000));
    store.compact(&cur).unwrap();
    let before = fs::metadata(store.journal_path()).unwrap().len();
    // The list re-sent with one forward more, in the middle.
    let mut next = cur.state.clone();
    let extra = forwards(1, 9).nat.port_forwards[0].clone();
    next.nat.port_forwards.insert(700, extra);
    push(&mut store, &mut cur, next);
    let grew = fs::metadata(store.journal_path()).unwrap().len() - before;
    assert!(grew < 400, "one forward cost {grew} bytes");
    assert_eq!(store.load().unwrap(), cur);
    let (_, loaded) = opened(tmp.path());
    assert_eq!(loaded, cur);
}

/// Every prefix of the journal (a crash cut the file anywhere) reads as a committed state of
/// the sequence, never a mix; a flipped byte in the last record drops only that record.
#[test]
fn torn_and_corrupt_tails_are_cut_never_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, mut cur) = opened(tmp.path());
    let mut states = vec![cur.clone()];
    for k in 0..6 {
        push(&mut store, &mut cur, forwards(2 + k, 100 * k));
        states.push(cur.clone());
    }
    let full = fs::read(store.journal_path()).unwrap();
    let scratch = tmp.path().join("cut");
    for len in 0..=full.len() {
        let _ = fs::remove_dir_all(&scratch);
        fs::create_dir_all(&scratch).unwrap();
        fs::write(scratch.join("state.journal"), &full[..len]).unwrap();
        // The snapshot the first push wrote (a new directory's first commit compacts).
        fs::copy(store.current_path(), scratch.join("state.json")).unwrap();
        let (mut s, loaded) = opened(&scratch);
        let k = loaded.generation as usize;
        assert_eq!(loaded, states[k], "cut at {len}");
        assert!(
            s.load_recovering().unwrap().problem.is_none(),
            "cut at {len}"
        );
        // The writer continues after the cut: one more push reads back (at some cuts: each
        // costs fsyncs).
        if len % 17 != 0 && len != full.len() {
            continue;
        }
        let mut c = loaded;
        push(&mut s, &mut c, forwards(1, 7));
        assert_eq!(opened(&scratch).1, c, "push after the cut at {len}");
    }
    // A flipped byte inside a middle record: applied up to it, said so.
    let mut bad = full.clone();
    bad[full.len() / 2] ^= 0x55;
    fs::write(store.journal_path(), &bad).unwrap();
    let mut s = Store::open(tmp.path()).unwrap();
    let l = s.load_recovering().unwrap();
    assert!(l.stored.generation < 6 && l.from_good);
    assert_eq!(l.stored, states[l.stored.generation as usize]);
    assert!(l.problem.unwrap().contains("corrupt"));
    assert_eq!(fs::read(s.journal_corrupt_path()).unwrap(), bad);
    // The next push starts a new journal, whole, and compacts.
    let mut c = l.stored;
    push(&mut s, &mut c, forwards(3, 5));
    let l = Store::open(tmp.path()).unwrap().load_recovering().unwrap();
    assert_eq!((l.stored, l.problem), (c, None));
}

#[test]
fn compaction_past_the_bound_keeps_the_state_and_empties_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, mut cur) = opened(tmp.path());
    store.w.max_records = 4;
    for g in 1..=10 {
        commit(&mut store, &mut cur, g);
        assert_eq!(store.load().unwrap(), cur);
    }
    // 10 commits, compacted at 1 (no snapshot yet), 5 and 9: the snapshot holds 9, the
    // journal 10.
    let snap = replay::read_snapshot(&store.current_path()).unwrap();
    assert_eq!(snap.generation, 9);
    assert_eq!(
        fs::read(store.good_path()).unwrap(),
        fs::read(store.current_path()).unwrap()
    );
    assert_eq!(store.w.records, 1);
    // A compaction a crash cut before the journal was emptied: the old records are skipped.
    let journal = fs::read(store.journal_path()).unwrap();
    store.compact(&cur).unwrap();
    fs::write(store.journal_path(), &journal).unwrap();
    let (_, loaded) = opened(tmp.path());
    assert_eq!(loaded, cur);
}

/// A commit leaves the compaction to the caller (after the answer), unless the journal is
/// far past its bounds; a store whose engine changed its copy does not compact it.
#[test]
fn compaction_waits_for_the_caller_up_to_four_times_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, mut cur) = opened(tmp.path());
    store.w.max_records = 2;
    commit(&mut store, &mut cur, 1);
    let bare_commit = |store: &mut Store, cur: &mut Stored, g: u64| {
        let mut next = cur.clone();
        next.generation = g;
        next.state.policy_index.insert(format!("eth{g}"), g as u32);
        store.write_next(cur, &next).unwrap();
        store.commit_next(&next).unwrap();
        *cur = next;
    };
    bare_commit(&mut store, &mut cur, 2);
    bare_commit(&mut store, &mut cur, 3);
    assert_eq!(store.w.records, 2, "compacted by the commit");
    // The engine changed its copy (an HA role held back): not what any push committed.
    store.rebase();
    store.compact_if_due(&cur);
    assert_eq!(store.w.records, 2, "compacted a copy no push committed");
    bare_commit(&mut store, &mut cur, 4);
    store.compact_if_due(&cur);
    assert_eq!(store.w.records, 0);
    assert_eq!(replay::read_snapshot(&store.current_path()).unwrap(), cur);
    for g in 5..=11 {
        bare_commit(&mut store, &mut cur, g);
    }
    assert_eq!(store.w.records, 7, "compacted before four times the bound");
    bare_commit(&mut store, &mut cur, 12);
    assert_eq!(store.w.records, 0, "not compacted at four times the bound");
    assert_eq!(opened(tmp.path()).1, cur);
    // Asked for (a forgotten password): compacted by the commit itself.
    bare_commit(&mut store, &mut cur, 13);
    store.compact_at_next_commit();
    bare_commit(&mut store, &mut cur, 14);
    assert_eq!(store.w.records, 0, "an asked-for compaction waited");
    assert_eq!(replay::read_snapshot(&store.current_path()).unwrap(), cur);
}

/// A tiny xorshift, so the sequence is reproducible from the seed printed on failure.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One random edit of a section: lists grow, shrink or change in place; maps gain, lose and
/// change keys; whole sections appear and go.
fn random_edit(rng: &mut Rng, s: &mut DesiredState) {
    let port = rng.below(60000) as u32 + 1;
    let one = forwards(1, port).nat.port_forwards.remove(0);
    match rng.below(8) {
        0 => {
            let at = rng.below(s.nat.port_forwards.len() as u64 + 1) as usize;
            s.nat.port_forwards.insert(at, one);
        }
        1 if !s.nat.port_forwards.is_empty() => {
            let at = rng.below(s.nat.port_forwards.len() as u64) as usize;
            s.nat.port_forwards.remove(at);
        }
        2 if !s.nat.port_forwards.is_empty() => {
            let at = rng.below(s.nat.port_forwards.len() as u64) as usize;
            s.nat.port_forwards[at] = one;
        }
        3 => {
            let ip = format!("10.1.{}.{}", rng.below(4), rng.below(250) + 1);
            let vm: vr_guest::metadata::VmMetadata = serde_json::from_value(
                serde_json::json!({"keys": [{"name": "zone", "value": port.to_string()}]}),
            )
            .unwrap();
            s.metadata.vms.insert(ip.parse().unwrap(), vm);
        }
        4 if !s.metadata.vms.is_empty() => {
            let k = *s.metadata.vms.keys().next().unwrap();
            s.metadata.vms.remove(&k);
        }
        5 => {
            s.routes = serde_json::from_value(serde_json::json!([
                {"destination": format!("10.{}.0.0/16", port % 250), "gateway": "10.1.0.254"}
            ]))
            .unwrap();
        }
        6 => {
            s.policy_index.insert(format!("eth{}", port % 7), port);
        }
        _ => {
            // Several sections at once: a whole list replaced.
            s.nat.port_forwards = forwards(rng.below(20) as u32, port).nat.port_forwards;
            s.routes.clear();
        }
    }
}

#[test]
fn random_edits_replayed_from_disk_equal_the_state_in_memory() {
    let seed = 0x5eed_0000_0000_0001 ^ u64::from(std::process::id());
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, mut cur) = opened(tmp.path());
    store.w.max_records = 7;
    for step in 0..300 {
        let mut next = cur.state.clone();
        for _ in 0..=rng.below(3) {
            random_edit(&mut rng, &mut next);
        }
        match rng.below(10) {
            // A push that failed: its intent is cut off.
            0 => {
                let n = Stored {
                    generation: cur.generation + 1,
                    committed_at: 0,
                    state: next,
                };
                store.write_next(&cur, &n).unwrap();
                store.discard_next().unwrap();
            }
            // A restart: the writer set up from disk again, deltas continue from it.
            1 => {
                let (s, loaded) = opened(tmp.path());
                assert_eq!(loaded, cur, "seed {seed:#x} step {step}: restart");
                store = s;
                store.w.max_records = 7;
                push(&mut store, &mut cur, next);
            }
            _ => push(&mut store, &mut cur, next),
        }
        assert_eq!(store.load().unwrap(), cur, "seed {seed:#x} step {step}");
    }
    assert_eq!(opened(tmp.path()).1, cur, "seed {seed:#x}: final");
}

#[test]
fn a_rebased_engine_records_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, mut cur) = opened(tmp.path());
    push(&mut store, &mut cur, forwards(3, 10));
    // The engine dropped something from its copy without a push (as the HA role at start):
    // a delta from its copy would keep the dropped part on disk.
    let (mut store, mut held) = opened(tmp.path());
    held.state.nat.port_forwards.pop();
    store.rebase();
    let mut next = held.state.clone();
    next.routes = forwards(0, 0).routes;
    next.policy_index.insert("eth2".into(), 0);
    let mut base = held;
    push(&mut store, &mut base, next);
    assert_eq!(opened(tmp.path()).1, base);
}
