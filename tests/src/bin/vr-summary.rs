//! Prints the robustness summary table recorded by the tests (see `vr_tests::summary`).

fn main() -> std::process::ExitCode {
    let rows = vr_tests::summary::load();
    if rows.is_empty() {
        println!("no robustness rows recorded yet (run the tests first)");
        return std::process::ExitCode::SUCCESS;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!("\nrobustness summary");
    print!("{}", vr_tests::summary::table(&rows, now));
    let bad = rows.iter().any(|r| {
        r.failures > 0
            || r.mixed_states.unwrap_or(0) > 0
            || r.leaked_secrets.unwrap_or(0) > 0
            || r.flows_lost_wrongly.unwrap_or(0) > 0
    });
    if bad {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}
