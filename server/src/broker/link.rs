//! The hub's side of the broker: the engine's cluster-mode outputs (`Publish`, `Refill`,
//! `Fetch`, whose pages live in Redis, and nickname claims) become broker requests, and the broker's reports become
//! engine inputs.

use chat_engine::{Engine, Input, Now, Output};

use crate::admin::Kicked;

use super::nicks::NickOp;
use super::node::{BrokerHandle, Publish, Report, Request};
use super::seats::SeatChange;

#[derive(Debug)]
pub(crate) struct BrokerLink {
    handle: BrokerHandle,
}

impl BrokerLink {
    pub(crate) fn new(handle: BrokerHandle) -> Self {
        Self { handle }
    }

    /// Sends a cluster-mode output to the broker; hands any other output back.
    pub(crate) fn take(&mut self, output: Output) -> Option<Output> {
        let request = match output {
            Output::Publish { op, room, message } => {
                Request::Publish(Publish { op, room, message })
            }
            Output::Refill { room, after, .. } => Request::Refill { room, after },
            Output::Fetch {
                to,
                room,
                before,
                limit,
            } => Request::Fetch {
                to,
                room,
                before,
                limit,
            },
            Output::ClaimNick {
                client,
                room,
                likeness,
            } => Request::Nick(NickOp::Claim {
                client,
                room,
                likeness,
            }),
            Output::ReleaseNick {
                client,
                room,
                likeness,
            } => Request::Nick(NickOp::Release {
                client,
                room,
                likeness,
            }),
            Output::Relay { room, frame } => Request::Relay { room, frame },
            Output::Seated { client, room, nick } => Request::Seat(SeatChange::Seated {
                client: client.get(),
                room,
                nick,
            }),
            Output::Unseated { client, reason } => Request::Seat(SeatChange::Unseated {
                client: client.get(),
                reason,
            }),
            other => return Some(other),
        };
        if self.handle.requests.send(request).is_err() {
            tracing::warn!("the broker task has stopped; a request was dropped");
        }
        None
    }

    /// Has the node holding `nick` in `room` (another one: this one has nobody of that name)
    /// kick it; `reply` learns whether one does.
    pub(crate) fn kick_elsewhere(
        &mut self,
        room: String,
        nick: String,
        reply: tokio::sync::oneshot::Sender<Kicked>,
    ) {
        let request = Request::Kick { room, nick, reply };
        if let Err(refused) = self.handle.requests.send(request) {
            if let Request::Kick { reply, .. } = refused.0 {
                let _ = reply.send(Kicked::Unavailable);
            }
        }
    }

    /// The broker's reports, for the hub to wait on beside its inbox.
    pub(crate) fn take_reports(&mut self) -> tokio::sync::mpsc::Receiver<Report> {
        (self.handle.reports.take()).expect("the hub takes the broker's reports once")
    }

    /// Feeds one report to the engine. The caller then dispatches the engine's outputs.
    pub(crate) fn apply(report: Report, engine: &mut Engine, now: Now) {
        let result = match &report {
            Report::Published { op } => engine.handle(now, Input::Published { op: *op }),
            Report::PublishFailed { op } => engine.handle(now, Input::PublishFailed { op: *op }),
            Report::Ordered {
                room,
                epoch,
                seq,
                frame,
            } => engine.handle(
                now,
                Input::Ordered {
                    room,
                    epoch,
                    seq: *seq,
                    frame,
                },
            ),
            Report::Refilled {
                room,
                epoch,
                messages,
                complete,
            } => engine.handle(
                now,
                Input::Refilled {
                    room,
                    epoch,
                    messages,
                    complete: *complete,
                },
            ),
            Report::Resumed => engine.handle(now, Input::BrokerResumed),
            Report::RemoteSeats { node, changes } => {
                let mut result = Ok(());
                for change in changes {
                    let input = match change {
                        SeatChange::Seated { client, room, nick } => Input::RemoteSeated {
                            node,
                            client: *client,
                            room,
                            nick,
                        },
                        SeatChange::Unseated { client, reason } => Input::RemoteUnseated {
                            node,
                            client: *client,
                            reason: *reason,
                        },
                    };
                    result = result.and(engine.handle(now, input));
                }
                result
            }
            Report::RemoteNode {
                node,
                seats,
                missing,
            } => engine.handle(
                now,
                Input::RemoteNode {
                    node,
                    seats,
                    missing: *missing,
                },
            ),
            Report::Relayed { room, frame } => engine.handle(now, Input::Relayed { room, frame }),
            Report::Kick { room, nick } => match engine.kick(now, room, nick) {
                Ok(client) => {
                    tracing::info!(%client, "kicked by an operator (through another node)");
                    Ok(())
                }
                // It left, or was renamed, since the other node looked.
                Err(_) => Ok(()),
            },
            Report::NickClaimed {
                client,
                room,
                likeness,
                outcome,
            } => engine.handle(
                now,
                Input::NickClaimed {
                    client: *client,
                    room,
                    likeness,
                    outcome: *outcome,
                },
            ),
            Report::Fetched {
                to,
                room,
                messages,
                complete,
            } => engine.handle(
                now,
                Input::Fetched {
                    to: *to,
                    room,
                    messages,
                    complete: *complete,
                },
            ),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "the engine refused a broker report");
        }
    }
}
