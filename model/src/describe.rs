//! Steps and states in words, for traces and for Explorer.

use crate::action::Action;
use crate::state::{Body, Message, Role, Server, State};
use std::fmt::Write;

fn describe_message(message: &Message) -> String {
    let term = message.term;
    match message.body {
        Body::RequestVote {
            last_log_index,
            last_log_term,
        } => format!("RequestVote(term {term}, last entry {last_log_index}@{last_log_term})"),
        Body::RequestVoteResponse { granted } => {
            let verdict = if granted { "granted" } else { "refused" };
            format!("RequestVoteResponse(term {term}, {verdict})")
        }
        Body::AppendEntries(request) => format!(
            "AppendEntries(term {term}, prev {}@{}, entries {}, commit {})",
            request.prev_log_index, request.prev_log_term, request.entries, request.leader_commit
        ),
        Body::AppendEntriesResponse {
            success,
            match_index,
        } => {
            let verdict = if success { "success" } else { "failure" };
            format!("AppendEntriesResponse(term {term}, {verdict}, match {match_index})")
        }
    }
}

/// One action in words, e.g. `s1 times out`.
pub fn describe_action(action: &Action) -> String {
    match action {
        Action::Timeout(id) => format!("s{id} times out and starts an election"),
        Action::ClientRequest(id) => format!("a client hands leader s{id} a value"),
        Action::AppendEntries { leader, follower } => {
            format!("leader s{leader} sends AppendEntries to s{follower}")
        }
        Action::ChangeMembership { leader, server } => {
            format!("leader s{leader} starts adding or removing s{server}")
        }
        Action::Restart(id) => format!("s{id} crashes and restarts"),
        Action::Deliver(m) => format!(
            "s{} receives {} from s{}",
            m.to,
            describe_message(m),
            m.from
        ),
        Action::Drop(m) => format!(
            "the network drops {} from s{} to s{}",
            describe_message(m),
            m.from,
            m.to
        ),
    }
}

pub(crate) fn describe_server(id: usize, server: &Server) -> String {
    let role = match server.role {
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Leader => "LEADER",
    };
    let vote = server
        .voted_for
        .map_or("-".to_string(), |v| format!("s{v}"));
    format!(
        "s{id} {role} term {} vote {vote} log {} commit {}",
        server.term, server.log, server.commit_index
    )
}

/// Servers, messages in flight and history, one per line (for Explorer).
pub fn describe_state_in_full(servers: u8, state: &State) -> String {
    let mut text = String::new();
    let count = servers as usize;
    for (id, server) in state.active(servers).iter().enumerate() {
        let _ = write!(text, "{}", describe_server(id, server));
        if server.role == Role::Leader {
            let next = &server.next_index[..count];
            let matched = &server.match_index[..count];
            let _ = write!(text, " nextIndex {next:?} matchIndex {matched:?}");
        }
        let _ = writeln!(text);
    }
    let _ = writeln!(text, "in flight:");
    for m in &state.network {
        let _ = writeln!(text, "  s{} -> s{}: {}", m.from, m.to, describe_message(m));
    }
    let history = &state.history;
    let _ = writeln!(
        text,
        "committed {} (in terms {:?}), crashes {}, client values {}",
        history.committed,
        &history.committed_in_term[..history.committed.len() as usize],
        state.crashes,
        state.values
    );
    text
}
