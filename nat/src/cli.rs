//! The text backend (`--nft-backend=cli`): plans go to `nft -f -` in one transaction, so a
//! plan applies whole or not at all. Also reads the table back for verification.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::ir::Family;
use crate::plan::NftPlan;
use crate::render;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// The nft binary could not be started.
    #[error("cannot run {program}: {reason}")]
    Spawn { program: String, reason: String },
    /// nft refused the text; `what` names the plan, `stderr` nft's complaint (with the line).
    #[error("nft refused the {what}: {stderr}")]
    Refused { what: String, stderr: String },
}

/// How to run nft: the binary, optionally inside a named network namespace (tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nft {
    pub program: String,
    pub netns: Option<String>,
}

impl Default for Nft {
    fn default() -> Self {
        Nft {
            program: "nft".into(),
            netns: None,
        }
    }
}

impl Nft {
    pub fn in_netns(name: &str) -> Nft {
        Nft {
            netns: Some(name.to_string()),
            ..Nft::default()
        }
    }

    fn command(&self) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, &self.program]);
                c
            }
            None => Command::new(&self.program),
        }
    }

    fn run(&self, args: &[&str], stdin: &str, what: &str) -> Result<String, CliError> {
        let spawn_err = |e: std::io::Error| CliError::Spawn {
            program: self.program.clone(),
            reason: e.to_string(),
        };
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        if let Some(mut input) = child.stdin.take() {
            // A write error means nft exited early; its status and stderr say why.
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(CliError::Refused {
                what: what.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Loads `text` with `nft -f -` (one transaction).
    pub fn apply_text(&self, text: &str, what: &str) -> Result<(), CliError> {
        self.run(&["-f", "-"], text, what).map(|_| ())
    }

    /// Applies a plan; an empty plan runs nothing.
    pub fn apply(&self, plan: &NftPlan) -> Result<(), CliError> {
        let what = match plan {
            NftPlan::Empty => return Ok(()),
            NftPlan::Replace(rs) => {
                format!(
                    "full replace of table {} {}",
                    render::family(rs.family),
                    rs.table
                )
            }
            NftPlan::Elements { family, table, ops } => format!(
                "{} element change(s) in table {} {table}",
                ops.len(),
                render::family(*family)
            ),
            NftPlan::Remove { family, table } => {
                format!("removal of table {} {table}", render::family(*family))
            }
        };
        self.apply_text(&plan.to_string(), &what)
    }

    /// `nft list table` text, `None` when the table does not exist.
    pub fn list_table(&self, family: Family, table: &str) -> Result<Option<String>, CliError> {
        self.list(&["list", "table", render::family(family), table], table)
    }

    /// `nft -j list table` (JSON), `None` when the table does not exist.
    pub fn list_table_json(&self, family: Family, table: &str) -> Result<Option<String>, CliError> {
        self.list(
            &["-j", "list", "table", render::family(family), table],
            table,
        )
    }

    fn list(&self, args: &[&str], table: &str) -> Result<Option<String>, CliError> {
        match self.run(args, "", &format!("listing of table {table}")) {
            Ok(s) => Ok(Some(s)),
            Err(CliError::Refused { stderr, .. }) if stderr.contains("No such file") => Ok(None),
            Err(e) => Err(e),
        }
    }
}
