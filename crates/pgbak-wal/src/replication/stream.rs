//! START_REPLICATION PHYSICAL: the COPY-both stream of WAL, keepalives and status updates, and
//! how it ends (the end of a timeline, a server shutting down, or the client stopping).
//!
//! [`ReplicationStream::next_message`] only awaits socket reads, and what it has read stays in the
//! client's buffer, so it may be cancelled (used in `select!`) without losing bytes. Writing
//! (status updates, ending the stream) happens in methods that must be awaited to completion.

use super::{decode_row, log_notice, message_name, unexpected, Incoming, ReplicationClient};
use crate::protocol::stream::{
    parse_end_of_timeline, parse_stream_message, start_replication_command, PrimaryKeepalive,
    StandbyStatusUpdate, StreamMessage, XLogDataHeader, XLOG_DATA_HEADER_LEN,
};
use crate::{Error, Lsn, Result};
use bytes::Bytes;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

/// One event of a replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationMessage {
    /// WAL bytes starting at `header.start`.
    XLogData {
        /// Position and server clock.
        header: XLogDataHeader,
        /// The WAL bytes (a view into the received message, not a copy).
        data: Bytes,
    },
    /// A keepalive; answer one with `reply_requested` at once.
    Keepalive(PrimaryKeepalive),
    /// The server ended the stream; call [`ReplicationStream::finish`] to learn why.
    EndOfStream,
}

/// How a replication stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The timeline being streamed is not the server's latest and all of it was sent: streaming
    /// goes on with `next_tli`, whose WAL begins at `next_start`. The connection is ready for the
    /// next command.
    TimelineEnded {
        /// The timeline that follows.
        next_tli: u32,
        /// Where it branched off (at or before the end of what was streamed).
        next_start: Lsn,
    },
    /// The stream ended without a next timeline (the client stopped it). The connection is ready
    /// for the next command.
    Finished,
    /// The server is shutting down: it ended the stream and closes the connection.
    ServerStopped,
}

/// Where the stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// COPY-both mode, both directions open.
    Streaming,
    /// The server sent CopyDone; it waits for ours.
    ServerCopyDone,
    /// The server sent CommandComplete inside COPY mode: it is shutting down.
    ServerStopped,
    /// The server never entered COPY mode (the start was exactly the end of an old timeline).
    Skipped { next_tli: u32, next_start: Lsn },
}

/// An open START_REPLICATION stream. It borrows the connection; dropping it without
/// [`ReplicationStream::finish`] leaves the connection unusable.
pub struct ReplicationStream<'a> {
    client: &'a mut ReplicationClient,
    state: State,
}

impl ReplicationClient {
    /// Starts streaming WAL of timeline `tli` from `start` (through slot `slot` if given).
    ///
    /// The server refuses a start it no longer has WAL for, a timeline it does not know, and a slot
    /// that does not exist or is in use: those are [`Error::Server`]. When `start` is exactly the
    /// end of an old timeline the server skips streaming; the stream then ends at once with
    /// [`StreamEnd::TimelineEnded`].
    pub async fn start_replication(
        &mut self,
        slot: Option<&str>,
        start: Lsn,
        tli: u32,
    ) -> Result<ReplicationStream<'_>> {
        let command = start_replication_command(slot, start, tli)?;
        self.send_query(&command).await?;
        let mut rows: Option<Vec<Vec<Option<String>>>> = None;
        let mut next: Option<(u32, Lsn)> = None;
        let mut failure = None;
        loop {
            match self.read_incoming().await? {
                Incoming::CopyBoth(_) => {
                    return Ok(ReplicationStream {
                        client: self,
                        state: State::Streaming,
                    })
                }
                Incoming::Message(Message::ReadyForQuery(_)) => break,
                Incoming::Message(Message::ParameterStatus(p)) => self.store_parameter(&p)?,
                Incoming::Message(Message::RowDescription(_)) => rows = Some(Vec::new()),
                Incoming::Message(Message::DataRow(row)) => {
                    let decoded = decode_row(&row).map_err(|e| self.violation(e))?;
                    rows.as_mut()
                        .ok_or_else(|| {
                            self.violation(unexpected("DataRow without RowDescription", &command))
                        })?
                        .push(decoded);
                }
                Incoming::Message(Message::CommandComplete(_)) => {
                    if let Some(r) = rows.take() {
                        next = Some(parse_end_of_timeline(&r).map_err(|e| self.violation(e))?);
                    }
                }
                Incoming::Message(m) => {
                    return Err(self.violation(unexpected(message_name(&m), &command)))
                }
                Incoming::Error(e) => {
                    failure.get_or_insert(e);
                }
                Incoming::Notice(n) => log_notice(&self.server, &n),
            }
        }
        self.busy = false;
        if let Some(e) = failure {
            return Err(self.server_error(e));
        }
        match next {
            Some((next_tli, next_start)) => Ok(ReplicationStream {
                client: self,
                state: State::Skipped {
                    next_tli,
                    next_start,
                },
            }),
            None => Err(self.violation(Error::protocol(format!(
                "{command} ended without streaming and without naming a next timeline"
            )))),
        }
    }
}

impl ReplicationStream<'_> {
    /// The next message of the stream. Cancel-safe: see the module documentation.
    pub async fn next_message(&mut self) -> Result<ReplicationMessage> {
        if self.state != State::Streaming {
            return Ok(ReplicationMessage::EndOfStream);
        }
        loop {
            match self.client.read_incoming().await? {
                Incoming::Message(Message::CopyData(body)) => {
                    let bytes = body.into_bytes();
                    return match parse_stream_message(&bytes) {
                        Ok(StreamMessage::XLogData { header, .. }) => {
                            Ok(ReplicationMessage::XLogData {
                                header,
                                data: bytes.slice(XLOG_DATA_HEADER_LEN..),
                            })
                        }
                        Ok(StreamMessage::Keepalive(k)) => Ok(ReplicationMessage::Keepalive(k)),
                        Err(e) => Err(self.client.violation(e)),
                    };
                }
                Incoming::Message(Message::CopyDone) => {
                    self.state = State::ServerCopyDone;
                    return Ok(ReplicationMessage::EndOfStream);
                }
                Incoming::Message(Message::CommandComplete(_)) => {
                    self.state = State::ServerStopped;
                    return Ok(ReplicationMessage::EndOfStream);
                }
                Incoming::Message(Message::ParameterStatus(p)) => {
                    self.client.store_parameter(&p)?
                }
                Incoming::Message(m) => {
                    return Err(self
                        .client
                        .violation(unexpected(message_name(&m), "WAL streaming")))
                }
                Incoming::Notice(n) => log_notice(&self.client.server, &n),
                // The walsender ends the connection after an error in COPY mode.
                Incoming::Error(e) => return Err(self.client.server_error(e)),
                Incoming::CopyBoth(_) => {
                    return Err(self
                        .client
                        .violation(unexpected("second CopyBothResponse", "WAL streaming")))
                }
            }
        }
    }

    /// Sends a standby status update. Allowed until the client ends its side of the stream.
    pub async fn send_status(&mut self, update: &StandbyStatusUpdate) -> Result<()> {
        if !matches!(self.state, State::Streaming | State::ServerCopyDone) {
            return Err(Error::InvalidOption {
                option: "standby status update".to_string(),
                reason: "the replication stream has already ended".to_string(),
            });
        }
        let payload = update.encode();
        frontend::CopyData::new(&payload[..])
            .map_err(|e| Error::io("building a status update", e))?
            .write(&mut self.client.write_buf);
        self.client.flush().await
    }

    /// Ends the stream (sending CopyDone when the client's side is still open) and reads how it
    /// ended. WAL that arrives after the client stopped listening is discarded: the caller must
    /// have made durable and reported what it wants to keep before calling this.
    pub async fn finish(self) -> Result<StreamEnd> {
        let client = self.client;
        let mut server_done = match self.state {
            State::Skipped {
                next_tli,
                next_start,
            } => {
                return Ok(StreamEnd::TimelineEnded {
                    next_tli,
                    next_start,
                })
            }
            State::ServerStopped => return Ok(StreamEnd::ServerStopped),
            State::ServerCopyDone => true,
            State::Streaming => false,
        };
        frontend::copy_done(&mut client.write_buf);
        client.flush().await?;
        let mut rows: Option<Vec<Vec<Option<String>>>> = None;
        let mut next: Option<(u32, Lsn)> = None;
        let mut failure = None;
        loop {
            match client.read_incoming().await? {
                Incoming::Message(Message::CopyData(_)) if !server_done => {}
                Incoming::Message(Message::CopyDone) if !server_done => server_done = true,
                Incoming::Message(Message::ReadyForQuery(_)) => break,
                Incoming::Message(Message::ParameterStatus(p)) => client.store_parameter(&p)?,
                Incoming::Message(Message::RowDescription(_)) if server_done => {
                    rows = Some(Vec::new())
                }
                Incoming::Message(Message::DataRow(row)) if rows.is_some() => {
                    let decoded = decode_row(&row).map_err(|e| client.violation(e))?;
                    if let Some(r) = rows.as_mut() {
                        r.push(decoded);
                    }
                }
                Incoming::Message(Message::CommandComplete(_)) => {
                    if let Some(r) = rows.take() {
                        next = Some(parse_end_of_timeline(&r).map_err(|e| client.violation(e))?);
                    }
                }
                Incoming::Message(m) => {
                    return Err(
                        client.violation(unexpected(message_name(&m), "the end of WAL streaming"))
                    )
                }
                Incoming::Error(e) => {
                    failure.get_or_insert(e);
                }
                Incoming::Notice(n) => log_notice(&client.server, &n),
                Incoming::CopyBoth(_) => {
                    return Err(client
                        .violation(unexpected("CopyBothResponse", "the end of WAL streaming")))
                }
            }
        }
        client.busy = false;
        if let Some(e) = failure {
            return Err(client.server_error(e));
        }
        Ok(match next {
            Some((next_tli, next_start)) => StreamEnd::TimelineEnded {
                next_tli,
                next_start,
            },
            None => StreamEnd::Finished,
        })
    }
}
