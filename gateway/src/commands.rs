//! Device commands from the site LAN: who may send them, the HTTP endpoints,
//! and the append-only command log.
//!
//! Commands are off until `[commands]` names at least one operator; each
//! operator authenticates with a bearer token of which the config holds only
//! the SHA-256 (`dcmms-gateway operator-token` makes both). Every command is
//! written to `<state_dir>/commands.jsonl` twice, once when it is accepted
//! for execution and once with its result, so a crash in between still
//! leaves a trace; the file is append-only and synced on every line. The
//! driver decides whether the point is writable; this module decides who
//! asked and records what happened.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use dcmms_protocols_core::{Command, CommandError, CommandSender, CommandValue};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `[commands]`: writes and commands to devices.
///
/// ```toml
/// [commands]
/// timeout_ms = 10000
/// operators = [
///   { name = "alice", token_sha256 = "5e884898da28047151d0e56f8dc62927..." },
/// ]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    /// Who may send commands. Empty (the default) disables the command
    /// endpoint entirely; points must also be `writable = true`.
    #[serde(default)]
    pub operators: Vec<OperatorConfig>,
    /// How long the endpoint waits for the device's answer, in ms. Default 10000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// One operator allowed to send commands.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Name recorded in the command log (`[A-Za-z0-9_.-]`, 1-64 characters).
    pub name: String,
    /// Hex SHA-256 of the operator's bearer token.
    pub token_sha256: String,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl Default for CommandsConfig {
    fn default() -> Self {
        CommandsConfig {
            operators: Vec::new(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

impl CommandsConfig {
    /// Checks names and hashes; the error names the field at fault.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let mut names = std::collections::HashSet::new();
        for (i, o) in self.operators.iter().enumerate() {
            dcmms_shared::validate_name(&o.name)
                .map_err(|e| (format!("commands.operators[{i}].name"), e.to_string()))?;
            if !names.insert(o.name.as_str()) {
                return Err((
                    format!("commands.operators[{i}].name"),
                    format!("operator {:?} is listed twice", o.name),
                ));
            }
            let ok =
                o.token_sha256.len() == 64 && o.token_sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err((
                    format!("commands.operators[{i}].token_sha256"),
                    "must be 64 hex digits (see `dcmms-gateway operator-token`)".into(),
                ));
            }
        }
        if self.timeout_ms == 0 || self.timeout_ms > 300_000 {
            return Err((
                "commands.timeout_ms".into(),
                "must be between 1 and 300000".into(),
            ));
        }
        Ok(())
    }
}

/// Hex SHA-256 of a token, as stored in `token_sha256`.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random operator token (256 bits, hex).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// One line of the command log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub at_ms: i64,
    /// Sequence number of the command (both lines of one command share it).
    pub id: u64,
    /// `requested` or `done`.
    pub phase: String,
    pub operator: String,
    pub device: String,
    pub point: String,
    pub value: CommandValue,
    /// `ok` or a [`CommandError::code`]; absent on `requested` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The append-only command log file.
#[derive(Debug)]
pub struct CommandLog {
    path: PathBuf,
    file: Mutex<(File, u64)>,
}

impl CommandLog {
    /// Opens (or creates) the log, continuing its numbering.
    pub fn open(path: &Path) -> std::io::Result<CommandLog> {
        let mut last = 0;
        if path.exists() {
            for line in BufReader::new(File::open(path)?).lines() {
                // A torn last line from a power cut is skipped, not fatal.
                if let Ok(e) = serde_json::from_str::<LogEntry>(&line?) {
                    last = last.max(e.id);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(CommandLog {
            path: path.to_owned(),
            file: Mutex::new((file, last)),
        })
    }

    /// Takes the next command id.
    fn next_id(&self) -> u64 {
        let mut g = self.file.lock().unwrap_or_else(|p| p.into_inner());
        g.1 += 1;
        g.1
    }

    /// Appends one entry and syncs it to disk.
    pub fn append(&self, entry: &LogEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut g = self.file.lock().unwrap_or_else(|p| p.into_inner());
        g.0.write_all(&line)?;
        g.0.sync_data()
    }

    /// The last `limit` entries, oldest first.
    pub fn tail(&self, limit: usize) -> std::io::Result<Vec<LogEntry>> {
        let _g = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = std::collections::VecDeque::with_capacity(limit.min(1024));
        for line in BufReader::new(File::open(&self.path)?).lines() {
            if let Ok(e) = serde_json::from_str::<LogEntry>(&line?) {
                if out.len() == limit {
                    out.pop_front();
                }
                if limit > 0 {
                    out.push_back(e);
                }
            }
        }
        Ok(out.into())
    }
}

/// Everything the command endpoints need.
#[derive(Debug)]
pub struct CommandCenter {
    /// Operator name by token hash.
    operators: HashMap<String, String>,
    senders: HashMap<String, CommandSender>,
    timeout: Duration,
    log: CommandLog,
}

/// Why a command request was turned down before or during execution.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("commands are disabled: no operators in [commands]")]
    Disabled,
    #[error("missing or unknown operator token")]
    Unauthorized,
    #[error("no device {0:?} accepts commands")]
    UnknownDevice(String),
    #[error("{0}")]
    Device(CommandError),
    #[error("the command log cannot be written: {0}")]
    Log(std::io::Error),
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Disabled => StatusCode::FORBIDDEN,
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::UnknownDevice(_) => StatusCode::NOT_FOUND,
            Refusal::Device(e) => match e {
                CommandError::UnknownPoint(_) => StatusCode::NOT_FOUND,
                CommandError::NotWritable(_) => StatusCode::FORBIDDEN,
                CommandError::BadValue(_) => StatusCode::UNPROCESSABLE_ENTITY,
                CommandError::Refused(_) => StatusCode::CONFLICT,
                CommandError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                CommandError::NotConnected
                | CommandError::Transport(_)
                | CommandError::DriverStopped => StatusCode::BAD_GATEWAY,
            },
            Refusal::Log(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Disabled => "commands_disabled",
            Refusal::Unauthorized => "unauthorized",
            Refusal::UnknownDevice(_) => "unknown_device",
            Refusal::Device(e) => e.code(),
            Refusal::Log(_) => "log_unavailable",
        }
    }
}

impl CommandCenter {
    pub fn new(
        cfg: &CommandsConfig,
        senders: HashMap<String, CommandSender>,
        log: CommandLog,
    ) -> CommandCenter {
        CommandCenter {
            operators: cfg
                .operators
                .iter()
                .map(|o| (o.token_sha256.to_ascii_lowercase(), o.name.clone()))
                .collect(),
            senders,
            timeout: Duration::from_millis(cfg.timeout_ms),
            log,
        }
    }

    /// The operator the request's bearer token belongs to.
    pub fn operator(&self, headers: &HeaderMap) -> Result<String, Refusal> {
        if self.operators.is_empty() {
            return Err(Refusal::Disabled);
        }
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Refusal::Unauthorized)?;
        self.operators
            .get(&token_hash(token.trim()))
            .cloned()
            .ok_or(Refusal::Unauthorized)
    }

    /// Devices that accept commands.
    pub fn devices(&self) -> Vec<String> {
        let mut v: Vec<_> = self.senders.keys().cloned().collect();
        v.sort();
        v
    }

    pub fn log(&self) -> &CommandLog {
        &self.log
    }

    /// Logs, executes and logs the result of one command.
    pub async fn execute(
        &self,
        operator: &str,
        device: &str,
        command: Command,
    ) -> Result<u64, Refusal> {
        let sender = self
            .senders
            .get(device)
            .ok_or_else(|| Refusal::UnknownDevice(device.to_owned()))?;
        let id = self.log.next_id();
        let mut entry = LogEntry {
            at_ms: crate::pipeline::now_ms(),
            id,
            phase: "requested".into(),
            operator: operator.to_owned(),
            device: device.to_owned(),
            point: command.point.clone(),
            value: command.value,
            result: None,
            message: None,
        };
        self.log.append(&entry).map_err(Refusal::Log)?;
        let result = match tokio::time::timeout(self.timeout, sender.execute(command)).await {
            Ok(r) => r,
            Err(_) => Err(CommandError::Timeout),
        };
        entry.at_ms = crate::pipeline::now_ms();
        entry.phase = "done".into();
        match &result {
            Ok(()) => entry.result = Some("ok".into()),
            Err(e) => {
                entry.result = Some(e.code().into());
                entry.message = Some(e.to_string());
            }
        }
        let label = entry.result.clone().unwrap_or_default();
        metrics::counter!("dcmms_gateway_commands_total", "device" => device.to_owned(), "result" => label.clone())
            .increment(1);
        tracing::info!(
            id,
            operator,
            device,
            point = %entry.point,
            value = %entry.value,
            result = %label,
            "device command"
        );
        // The command has run: a log failure now is reported, not hidden.
        self.log.append(&entry).map_err(Refusal::Log)?;
        result.map(|()| id).map_err(Refusal::Device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcmms_protocols_core::command_channel;

    fn center(dir: &Path, token: &str) -> (CommandCenter, dcmms_protocols_core::CommandPort) {
        let (tx, port) = command_channel();
        let cfg = CommandsConfig {
            operators: vec![OperatorConfig {
                name: "alice".into(),
                token_sha256: token_hash(token),
            }],
            timeout_ms: 2000,
        };
        cfg.validate().unwrap();
        let log = CommandLog::open(&dir.join("commands.jsonl")).unwrap();
        let senders = HashMap::from([("inv-01".to_string(), tx)]);
        (CommandCenter::new(&cfg, senders, log), port)
    }

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {t}").parse().unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn commands_are_authorised_executed_and_logged() {
        let dir = tempfile::tempdir().unwrap();
        let token = new_token();
        let (c, mut port) = center(dir.path(), &token);
        assert!(matches!(
            c.operator(&HeaderMap::new()),
            Err(Refusal::Unauthorized)
        ));
        assert!(matches!(
            c.operator(&bearer("nope")),
            Err(Refusal::Unauthorized)
        ));
        assert_eq!(c.operator(&bearer(&token)).unwrap(), "alice");

        tokio::spawn(async move {
            while let Some(req) = port.rx.recv().await {
                let r = if req.command.point == "p_limit" {
                    Ok(())
                } else {
                    Err(CommandError::NotWritable(req.command.point.clone()))
                };
                req.finish(r);
            }
        });
        let cmd = |p: &str| Command {
            point: p.into(),
            value: CommandValue::Analog(40.0),
        };
        assert_eq!(
            c.execute("alice", "inv-01", cmd("p_limit")).await.unwrap(),
            1
        );
        let e = c
            .execute("alice", "inv-01", cmd("ac_power"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "not_writable");
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        let e = c
            .execute("alice", "nope", cmd("p_limit"))
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::NOT_FOUND);

        let log = c.log().tail(10).unwrap();
        let summary: Vec<_> = log
            .iter()
            .map(|e| (e.id, e.phase.as_str(), e.result.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, "requested", None),
                (1, "done", Some("ok")),
                (2, "requested", None),
                (2, "done", Some("not_writable")),
            ]
        );
        assert!(log
            .iter()
            .all(|e| e.operator == "alice" && e.device == "inv-01"));
        assert_eq!(c.log().tail(1).unwrap()[0].id, 2);

        // Numbering continues after a restart, and a torn line is skipped.
        drop(c);
        let path = dir.path().join("commands.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"at_ms\":1,\"id\":").unwrap();
        let log = CommandLog::open(&path).unwrap();
        assert_eq!(log.next_id(), 3);
    }

    #[tokio::test]
    async fn a_silent_driver_times_out_and_no_operators_means_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, _port) = command_channel();
        let cfg = CommandsConfig {
            operators: vec![],
            timeout_ms: 50,
        };
        let log = CommandLog::open(&dir.path().join("c.jsonl")).unwrap();
        let c = CommandCenter::new(&cfg, HashMap::from([("d".to_string(), tx)]), log);
        assert!(matches!(c.operator(&bearer("x")), Err(Refusal::Disabled)));
        let e = c
            .execute(
                "alice",
                "d",
                Command {
                    point: "b".into(),
                    value: CommandValue::Binary(true),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "timeout");
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn config_validation_names_the_field() {
        let cfg = CommandsConfig {
            operators: vec![OperatorConfig {
                name: "bob".into(),
                token_sha256: "abc".into(),
            }],
            timeout_ms: 1000,
        };
        let (field, _) = cfg.validate().unwrap_err();
        assert_eq!(field, "commands.operators[0].token_sha256");
        assert_eq!(token_hash("password").len(), 64);
    }
}
