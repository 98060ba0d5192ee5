//! `--help` on every command.

use crate::common::*;

#[test]
fn help_on_every_command() {
    for cmd in [
        vec!["--help"],
        vec!["info", "--help"],
        vec!["forward", "--help"],
        vec!["segment", "--help"],
        vec!["bench", "--help"],
        vec!["export", "--help"],
        vec!["parity", "--help"],
        vec!["init", "--help"],
        vec!["train", "--help"],
        vec!["eval", "--help"],
        vec!["synth-isic", "--help"],
    ] {
        let o = run(&cmd);
        assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage"), "{cmd:?}");
    }
}
