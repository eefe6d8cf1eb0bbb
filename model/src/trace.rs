//! Readable traces: one line per step, in the server names of the initial state.

use crate::action::Action;
use crate::describe::{self, describe_action, describe_server};
use crate::raft::RaftModel;
use crate::state::State;
use crate::symmetry::{self, Permutation, IDENTITY};
use stateright::Path;
use std::fmt::Write;

/// The servers and the number of messages in flight, on one line.
pub fn describe_state(model: &RaftModel, state: &State) -> String {
    let mut line = String::new();
    for (id, server) in state.active(model.bounds.servers).iter().enumerate() {
        let _ = write!(line, "{} | ", describe_server(id, server));
    }
    let _ = write!(line, "{} in flight", state.network.len());
    line
}

/// Servers, messages in flight and history, one per line (for Explorer).
pub fn describe_state_in_full(model: &RaftModel, state: &State) -> String {
    describe::describe_state_in_full(model.bounds.servers, state)
}

/// One line per step of `path`: the action, then the resulting state.
///
/// When the model canonicalizes, the checker's states are renamed at every step; this replays
/// the renamings and undoes them, so a server keeps one name through the whole trace.
pub fn describe_path(model: &RaftModel, path: &Path<State, Action>) -> Vec<String> {
    let plain = model.clone().with_canonicalize(false);
    let steps = path.clone().into_vec();
    // `renaming` maps trace names to the checker's names for the current state.
    let mut renaming: Permutation = IDENTITY;
    let mut lines = Vec::new();
    for (state, action) in steps {
        let Some(action) = action else { break };
        let original = symmetry::rename_action(&action, &symmetry::invert(&renaming));
        let Some(next) = plain.step(&state, action) else {
            continue;
        };
        // `next` is the checker's state before its renaming, in the current checker names.
        let shown = symmetry::rename_state(&next, &symmetry::invert(&renaming), model.bounds);
        if model.canonicalize {
            let step = symmetry::canonical_permutation(&next, model.bounds);
            renaming = symmetry::compose(&renaming, &step);
        }
        lines.push(format!(
            "{}. {}  =>  {}",
            lines.len() + 1,
            describe_action(&original),
            describe_state(model, &shown)
        ));
    }
    lines
}
