//! Where a push's time goes: one debug line per phase (intake read, parse, merge, validate,
//! plan, execute, persist, answer) under the target `vr_agent::timing`, so that
//! `RUST_LOG=info,vr_agent::timing=debug` shows the phases without the plans that plain
//! `debug` would also render. `vr-bench`'s end-to-end section reads these lines back.

use std::time::Instant;

/// Logs `phase` and its duration in milliseconds when dropped.
#[must_use = "the phase is timed until the guard is dropped"]
#[derive(Debug)]
pub struct Phase {
    name: &'static str,
    concern: &'static str,
    start: Instant,
}

/// Times `name` until the returned guard is dropped.
pub fn phase(name: &'static str) -> Phase {
    Phase {
        name,
        concern: "",
        start: Instant::now(),
    }
}

/// Times `name` of one concern (plan, execute).
pub fn concern_phase(name: &'static str, concern: &'static str) -> Phase {
    Phase {
        name,
        concern,
        start: Instant::now(),
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        // The check first: timing is free when the level is off.
        if tracing::enabled!(tracing::Level::DEBUG) {
            let ms = self.start.elapsed().as_secs_f64() * 1000.0;
            tracing::debug!(phase = %self.name, concern = %self.concern, ms, "push phase");
        }
    }
}
