//! Membership changes as Fabric makes them, one node at a time, through
//! ordeal-node's `POST /members` and `POST /transfer` (docs/node-api.md):
//! what the `member` and `transfer` faults share. Changes go to the leader
//! (a `421` names it: followed), a `409` is retried with backoff, and a
//! whole change is bounded by [`change_time`]. After every step the
//! registry follows the leader's `GET /members`.

use crate::cluster::membership::{Membership, Standing};
use crate::nemesis::context::Context;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The least time a membership change is given (an add starts a node that
/// must catch up before its promotion), whatever the fault interval.
const CHANGE_TIME_MIN: Duration = Duration::from_secs(8);
/// Bound on one request to a node.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// First and largest pause between retries.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often the leader is polled while a transfer completes.
const TRANSFER_POLL: Duration = Duration::from_millis(100);

/// How long one membership change (or transfer) may take: the fault
/// interval, at least [`CHANGE_TIME_MIN`].
pub fn change_time(interval: Duration) -> Duration {
    interval.max(CHANGE_TIME_MIN)
}

/// A configuration as a node applied it (`GET /members`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Config {
    /// Voters (the incoming ones while joint), ids sorted.
    pub voters: Vec<u64>,
    /// Learners, ids sorted.
    pub learners: Vec<u64>,
    /// The leader the node knows, 0 for none.
    pub leader: u64,
}

impl Config {
    /// Reads `GET /members`' answer; `None` when it is not that shape.
    pub fn from_json(body: &Value) -> Option<Config> {
        let ids = |field: &str| -> Option<Vec<u64>> {
            body[field].as_array()?.iter().map(Value::as_u64).collect()
        };
        Some(Config {
            voters: ids("voters")?,
            learners: ids("learners")?,
            leader: body["leader"].as_u64().unwrap_or(0),
        })
    }

    /// `{"voters": [names], "learners": [names]}` as the history has it.
    pub fn names(&self) -> Value {
        let names = |ids: &[u64]| ids.iter().map(|id| name(*id)).collect::<Vec<_>>();
        json!({"voters": names(&self.voters), "learners": names(&self.learners)})
    }

    /// Whether `n<id>` is a voter or a learner.
    pub fn has(&self, id: u64) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }
}

/// A node's name from its raft id.
pub fn name(id: u64) -> String {
    format!("n{id}")
}

/// A node's raft id from its name `n<id>`.
pub fn id_of(node: &str) -> Option<u64> {
    node.strip_prefix('n')?.parse().ok()
}

/// Talks to the members: finds the leader, sends changes, follows `421`.
pub struct Members<'a> {
    http: reqwest::Client,
    /// What the nemesis works with: the registry, the runtime, the probe.
    pub ctx: &'a Context,
    deadline: Instant,
}

impl<'a> Members<'a> {
    /// A session for one change, which must end by `deadline`.
    pub fn new(ctx: &'a Context, deadline: Instant) -> anyhow::Result<Members<'a>> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Members {
            http,
            ctx,
            deadline,
        })
    }

    fn registry(&self) -> &Membership {
        &self.ctx.membership
    }

    fn url(&self, node: &str) -> Option<String> {
        self.registry().get(node).map(|e| e.url)
    }

    /// The leader most members name, when one does and it answers
    /// `GET /members` as the leader.
    pub async fn leader(&self) -> Option<(String, Config)> {
        let leader = self.ctx.leader().await?;
        let config = self.config(&leader).await?;
        (config.leader == id_of(&leader)?).then_some((leader, config))
    }

    /// The leader, asked until one answers or the deadline passes.
    pub async fn leader_until_deadline(&self) -> Option<(String, Config)> {
        loop {
            if let Some(found) = self.leader().await {
                return Some(found);
            }
            if Instant::now() + BACKOFF_MAX > self.deadline {
                return None;
            }
            tokio::time::sleep(BACKOFF_MAX / 2).await;
        }
    }

    /// A node's applied configuration.
    pub async fn config(&self, node: &str) -> Option<Config> {
        let url = self.url(node)?;
        let answer = self.http.get(format!("{url}/members")).send().await.ok()?;
        Config::from_json(&answer.json::<Value>().await.ok()?)
    }

    /// `POST path` on a node: the status and the body (`error` when it
    /// is an error).
    async fn post(&self, node: &str, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let url = self
            .url(node)
            .ok_or_else(|| format!("{node} is not in the registry"))?;
        let answer = self
            .http
            .post(format!("{url}{path}"))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("POST {path} on {node}: {e}"))?;
        let status = answer.status().as_u16();
        let body = answer.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Sends `changes` to the leader until one answers `200` or `goal`
    /// holds of the leader's configuration (a change whose answer was lost
    /// may have applied); bounded by the deadline. Returns the last error.
    /// When `not_by` leads, returns [`Sent::ItLeads`] without sending (a
    /// leader does not remove itself).
    pub async fn change(
        &self,
        changes: Value,
        goal: impl Fn(&Config) -> bool,
        not_by: Option<&str>,
    ) -> Result<Sent, String> {
        let body = json!({ "changes": changes });
        let mut backoff = BACKOFF_MIN;
        let mut last = "no leader answered".to_string();
        let mut to: Option<String> = None;
        while Instant::now() < self.deadline {
            let leader = match to.take() {
                Some(l) => Some(l),
                None => self.leader().await.map(|(l, _)| l),
            };
            if leader.is_some() && leader.as_deref() == not_by {
                return Ok(Sent::ItLeads);
            }
            if let Some(leader) = leader {
                match self.post(&leader, "/members", &body).await {
                    Ok((200, _)) => return Ok(Sent::Applied),
                    Ok((421, answer)) => {
                        last = error_of(&answer);
                        to = named_leader(&last).map(name);
                        if to.is_some() {
                            tokio::time::sleep(BACKOFF_MIN).await;
                            continue;
                        }
                    }
                    Ok((_, answer)) => last = error_of(&answer),
                    Err(e) => last = e,
                }
                if self.config(&leader).await.is_some_and(|c| goal(&c)) {
                    return Ok(Sent::Applied);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        Err(format!(
            "{changes}: not applied within the change's time: {last}"
        ))
    }

    /// Moves leadership to `to` and waits until the members name it
    /// (bounded by the deadline); returns the leader at the end.
    pub async fn transfer(&self, to: &str) -> (Option<String>, Result<(), String>) {
        let id = id_of(to).unwrap_or(0);
        let wait = Duration::from_millis(self.ctx.election_timeout_ms * 2);
        let mut last = "no leader answered".to_string();
        let mut leader = None;
        while Instant::now() < self.deadline {
            leader = self.leader().await.map(|(l, _)| l);
            match &leader {
                Some(l) if l == to => return (leader, Ok(())),
                Some(l) => match self.post(l, "/transfer", &json!({ "to": id })).await {
                    Ok((200, _)) => {}
                    Ok((_, answer)) => last = error_of(&answer),
                    Err(e) => last = e,
                },
                None => {}
            }
            let until = (Instant::now() + wait).min(self.deadline);
            while Instant::now() < until {
                tokio::time::sleep(TRANSFER_POLL).await;
                if self.leader().await.is_some_and(|(l, _)| l == to) {
                    return (Some(to.to_string()), Ok(()));
                }
            }
        }
        (
            leader,
            Err(format!(
                "leadership did not reach {to} within the change's time: {last}"
            )),
        )
    }

    /// The registry follows a configuration: its voters and learners are
    /// members, and a member no longer in it was removed.
    pub fn follow(&self, config: &Config) {
        for entry in self.registry().all() {
            let standing = if config.voters.contains(&entry.id) {
                Standing::Voter
            } else if config.learners.contains(&entry.id) {
                Standing::Learner
            } else if entry.standing.is_member() {
                Standing::Removed
            } else {
                continue;
            };
            self.registry().set(&entry.name, standing);
        }
    }

    /// Reads the leader's configuration and makes the registry follow it.
    pub async fn settle(&self) -> Option<Config> {
        let (_, config) = self.leader().await?;
        self.follow(&config);
        Some(config)
    }
}

/// How [`Members::change`] ended, when not in error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The change is applied.
    Applied,
    /// The node the change must not go through leads: nothing was sent.
    ItLeads,
}

/// The `error` of an error answer, else the answer itself.
fn error_of(answer: &Value) -> String {
    answer["error"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| answer.to_string())
}

/// The leader a `421` names ("the leader is node 3"); `None` for 0.
fn named_leader(message: &str) -> Option<u64> {
    let (_, rest) = message.split_once("leader is node ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|id| *id != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_answers_and_421s_are_read() {
        let body = json!({"voters": [1, 2, 4], "voters_outgoing": [], "learners": [5],
            "removed_at": null, "leader": 1});
        let c = Config::from_json(&body).unwrap();
        assert_eq!(
            c,
            Config {
                voters: vec![1, 2, 4],
                learners: vec![5],
                leader: 1
            }
        );
        assert_eq!(
            c.names(),
            json!({"voters": ["n1", "n2", "n4"], "learners": ["n5"]})
        );
        assert!(Config::from_json(&json!({"voters": "x"})).is_none());
        let m =
            "this node does not lead; the leader is node 3 (0: none known); send the request there";
        assert_eq!(named_leader(m), Some(3));
        assert_eq!(named_leader("the leader is node 0 (0: none known)"), None);
        assert_eq!(named_leader("busy"), None);
        assert_eq!(id_of("n12"), Some(12));
    }
}
