//! The BASE_BACKUP response as a state machine fed one backend message at a time, so that the
//! order of result sets, COPY streams and archives is checked in one place for both server
//! generations.

use super::{decode_row, message_name, unexpected, BaseBackupSink, TablespaceInfo};
use crate::protocol::{
    parse_base_backup_message, BaseBackupMessage, NEW_BASE_BACKUP_SYNTAX_VERSION_NUM,
};
use crate::replication::BaseBackupEnd;
use crate::{Error, Lsn, Result};
use postgres_protocol::message::backend::Message;
use std::io;

/// Where in a BASE_BACKUP response we are.
#[derive(Debug, PartialEq, Eq)]
enum CopyTarget {
    /// No COPY stream is open.
    Idle,
    /// A COPY stream is open; on 15+ no archive has begun yet (or the last one ended).
    Open,
    /// Bytes go to this archive.
    Archive(String),
    /// Bytes go to the manifest.
    Manifest,
}

/// The BASE_BACKUP response, message by message: two result sets (start position, tablespaces),
/// the archives and manifest, and the end position. On PostgreSQL 15+ one COPY stream carries
/// everything, multiplexed by a type byte; on 13 and 14 each archive, then the manifest, is its own
/// COPY stream, in the order of the tablespace list.
pub(super) struct BaseBackupFlow {
    multiplexed: bool,
    manifest_requested: bool,
    /// Rows of the result set being received.
    rows: Option<Vec<Vec<Option<String>>>>,
    result_sets: usize,
    start: Option<(Lsn, u32)>,
    tablespaces: Option<Vec<TablespaceInfo>>,
    end: Option<(Lsn, u32)>,
    copy_streams: usize,
    archives: usize,
    manifest_seen: bool,
    target: CopyTarget,
    bytes_done: u64,
}

fn sink_err(what: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| Error::io(format!("backup sink failed on {what}"), e)
}

fn parse_position(rows: &[Vec<Option<String>>], what: &str) -> Result<(Lsn, u32)> {
    let bad = |why: String| Error::protocol(format!("{what} position: {why}"));
    let [row] = rows else {
        return Err(bad(format!("expected 1 row, got {}", rows.len())));
    };
    let lsn = row
        .first()
        .and_then(|c| c.as_deref())
        .and_then(|t| t.parse::<Lsn>().ok())
        .ok_or_else(|| bad(format!("{:?} is not an LSN", row.first())))?;
    let tli = row
        .get(1)
        .and_then(|c| c.as_deref())
        .and_then(|t| t.parse::<u32>().ok())
        .ok_or_else(|| bad(format!("{:?} is not a timeline", row.get(1))))?;
    Ok((lsn, tli))
}

fn parse_tablespaces(rows: Vec<Vec<Option<String>>>) -> Result<Vec<TablespaceInfo>> {
    rows.into_iter()
        .map(|row| {
            let bad = |why: &str| Error::protocol(format!("tablespace list: {why}: {row:?}"));
            if row.len() < 3 {
                return Err(bad("expected 3 columns"));
            }
            let oid = match row[0].as_deref() {
                None => None,
                Some(t) => Some(t.parse::<u32>().map_err(|_| bad("spcoid is not an OID"))?),
            };
            let size_kb = match row[2].as_deref() {
                None => None,
                Some(t) => Some(t.parse::<i64>().map_err(|_| bad("size is not a number"))?),
            };
            if oid.is_some() != row[1].is_some() {
                return Err(bad(
                    "spcoid and spclocation must both be set or both be NULL",
                ));
            }
            Ok(TablespaceInfo {
                oid,
                location: row[1].clone(),
                size_kb,
            })
        })
        .collect()
}

impl BaseBackupFlow {
    pub(super) fn new(server_version_num: u32, manifest_requested: bool) -> Self {
        BaseBackupFlow {
            multiplexed: server_version_num >= NEW_BASE_BACKUP_SYNTAX_VERSION_NUM,
            manifest_requested,
            rows: None,
            result_sets: 0,
            start: None,
            tablespaces: None,
            end: None,
            copy_streams: 0,
            archives: 0,
            manifest_seen: false,
            target: CopyTarget::Idle,
            bytes_done: 0,
        }
    }

    pub(super) fn handle(&mut self, msg: Message, sink: &mut dyn BaseBackupSink) -> Result<()> {
        match msg {
            Message::RowDescription(_) => {
                if self.rows.is_some() || self.target != CopyTarget::Idle {
                    return Err(unexpected("RowDescription", "BASE_BACKUP"));
                }
                self.rows = Some(Vec::new());
            }
            Message::DataRow(row) => {
                let rows = self
                    .rows
                    .as_mut()
                    .ok_or_else(|| unexpected("DataRow", "BASE_BACKUP"))?;
                rows.push(decode_row(&row)?);
            }
            Message::CommandComplete(_) => {
                // The last CommandComplete ends the BASE_BACKUP command itself and has no rows.
                if let Some(rows) = self.rows.take() {
                    self.result_set(rows, sink)?;
                }
            }
            Message::CopyOutResponse(_) => self.copy_start(sink)?,
            Message::CopyData(body) => self.copy_data(body.data(), sink)?,
            Message::CopyDone => self.copy_done(sink)?,
            other => return Err(unexpected(message_name(&other), "BASE_BACKUP")),
        }
        Ok(())
    }

    fn result_set(
        &mut self,
        rows: Vec<Vec<Option<String>>>,
        sink: &mut dyn BaseBackupSink,
    ) -> Result<()> {
        match self.result_sets {
            0 => self.start = Some(parse_position(&rows, "start")?),
            1 => {
                let tablespaces = parse_tablespaces(rows)?;
                if let Some((lsn, tli)) = self.start {
                    sink.begin(lsn, tli, &tablespaces)
                        .map_err(sink_err("begin"))?;
                }
                self.tablespaces = Some(tablespaces);
            }
            2 => {
                if self.copy_streams == 0 {
                    return Err(Error::protocol("end position arrived before any archive"));
                }
                self.end = Some(parse_position(&rows, "end")?);
            }
            _ => return Err(unexpected("extra result set", "BASE_BACKUP")),
        }
        self.result_sets += 1;
        Ok(())
    }

    fn copy_start(&mut self, sink: &mut dyn BaseBackupSink) -> Result<()> {
        let tablespaces = self.tablespaces.as_ref().ok_or_else(|| {
            unexpected("CopyOutResponse before the tablespace list", "BASE_BACKUP")
        })?;
        if self.target != CopyTarget::Idle || self.end.is_some() {
            return Err(unexpected("CopyOutResponse", "BASE_BACKUP"));
        }
        if self.multiplexed {
            if self.copy_streams > 0 {
                return Err(unexpected(
                    "second COPY stream",
                    "a PostgreSQL 15+ BASE_BACKUP",
                ));
            }
            self.target = CopyTarget::Open;
        } else if let Some(ts) = tablespaces.get(self.copy_streams) {
            let name = match ts.oid {
                Some(oid) => format!("{oid}.tar"),
                None => "base.tar".to_string(),
            };
            sink.archive_start(&name, ts.location.as_deref())
                .map_err(sink_err(&name))?;
            self.archives += 1;
            self.target = CopyTarget::Archive(name);
        } else if self.manifest_requested && !self.manifest_seen {
            self.manifest_seen = true;
            self.target = CopyTarget::Manifest;
        } else {
            return Err(unexpected(
                "COPY stream beyond the announced tablespaces",
                "BASE_BACKUP",
            ));
        }
        self.copy_streams += 1;
        Ok(())
    }

    fn end_archive(&mut self, sink: &mut dyn BaseBackupSink) -> Result<()> {
        if let CopyTarget::Archive(name) = &self.target {
            sink.archive_end().map_err(sink_err(name))?;
            self.target = CopyTarget::Open;
        }
        Ok(())
    }

    fn copy_data(&mut self, data: &[u8], sink: &mut dyn BaseBackupSink) -> Result<()> {
        if self.target == CopyTarget::Idle {
            return Err(unexpected("CopyData outside a COPY stream", "BASE_BACKUP"));
        }
        // Servers may send empty CopyData frames; they carry nothing, not even a type byte.
        if data.is_empty() {
            return Ok(());
        }
        if !self.multiplexed {
            return match &self.target {
                CopyTarget::Archive(name) => {
                    sink.archive_data(data).map_err(sink_err(name))?;
                    self.bytes_done += data.len() as u64;
                    sink.progress(self.bytes_done).map_err(sink_err("progress"))
                }
                _ => sink.manifest_data(data).map_err(sink_err("manifest")),
            };
        }
        match parse_base_backup_message(data)? {
            BaseBackupMessage::NewArchive {
                name,
                tablespace_location,
            } => {
                if self.target == CopyTarget::Manifest {
                    return Err(unexpected("new archive after the manifest", "BASE_BACKUP"));
                }
                self.end_archive(sink)?;
                sink.archive_start(name, tablespace_location)
                    .map_err(sink_err(name))?;
                self.archives += 1;
                self.target = CopyTarget::Archive(name.to_string());
            }
            BaseBackupMessage::Data(bytes) => match &self.target {
                CopyTarget::Archive(name) => sink.archive_data(bytes).map_err(sink_err(name))?,
                CopyTarget::Manifest => sink.manifest_data(bytes).map_err(sink_err("manifest"))?,
                _ => return Err(unexpected("data before any archive", "BASE_BACKUP")),
            },
            BaseBackupMessage::Progress(done) => {
                sink.progress(done).map_err(sink_err("progress"))?
            }
            BaseBackupMessage::ManifestStart => {
                if self.target == CopyTarget::Manifest {
                    return Err(unexpected("second manifest", "BASE_BACKUP"));
                }
                self.end_archive(sink)?;
                self.manifest_seen = true;
                self.target = CopyTarget::Manifest;
            }
        }
        Ok(())
    }

    fn copy_done(&mut self, sink: &mut dyn BaseBackupSink) -> Result<()> {
        if self.target == CopyTarget::Idle {
            return Err(unexpected("CopyDone outside a COPY stream", "BASE_BACKUP"));
        }
        self.end_archive(sink)?;
        self.target = CopyTarget::Idle;
        Ok(())
    }

    /// Checks that everything announced arrived: a truncated backup must never look complete.
    pub(super) fn finish(self) -> Result<BaseBackupEnd> {
        let (start_lsn, start_tli) = self
            .start
            .ok_or_else(|| Error::protocol("BASE_BACKUP sent no start position"))?;
        let tablespaces = self
            .tablespaces
            .ok_or_else(|| Error::protocol("BASE_BACKUP sent no tablespace list"))?;
        let (end_lsn, end_tli) = self
            .end
            .ok_or_else(|| Error::protocol("BASE_BACKUP sent no end position"))?;
        if self.target != CopyTarget::Idle {
            return Err(Error::protocol("BASE_BACKUP ended inside a COPY stream"));
        }
        if self.archives != tablespaces.len() {
            return Err(Error::protocol(format!(
                "BASE_BACKUP announced {} tablespaces but sent {} archives",
                tablespaces.len(),
                self.archives
            )));
        }
        if self.manifest_requested && !self.manifest_seen {
            return Err(Error::protocol(
                "BASE_BACKUP sent no manifest although one was requested",
            ));
        }
        Ok(BaseBackupEnd {
            start_lsn,
            start_tli,
            end_lsn,
            end_tli,
        })
    }
}
