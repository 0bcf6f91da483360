//! Writes and commands sent to a device (setpoints, breaker operations).
//!
//! Commands are off by default: a driver accepts one only for a point its
//! config marks `writable = true`. The gateway owns the audit trail (who,
//! what, result); a driver only executes. A driver that supports commands
//! creates a [`CommandPort`] when it is built and hands out its sender
//! through [`crate::Driver::commands`]; its run loop serves the receiver
//! between poll cycles, so a command never races a read on the same link.

use std::fmt;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// The value a command carries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum CommandValue {
    /// A setpoint (analog output, holding register, OPC UA variable write).
    Analog(f64),
    /// A binary output: true = close/on/trip-latched, false = open/off.
    Binary(bool),
}

impl fmt::Display for CommandValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandValue::Analog(v) => write!(f, "{v}"),
            CommandValue::Binary(b) => write!(f, "{b}"),
        }
    }
}

/// One command for one point of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// The point name inside the device (without the `device/` prefix).
    pub point: String,
    pub value: CommandValue,
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case", tag = "code", content = "message")]
pub enum CommandError {
    #[error("no point {0:?} on this device")]
    UnknownPoint(String),
    #[error("point {0:?} is not writable (set writable = true in its config)")]
    NotWritable(String),
    #[error("value not accepted for this point: {0}")]
    BadValue(String),
    #[error("device not connected")]
    NotConnected,
    #[error("device refused the command: {0}")]
    Refused(String),
    #[error("no answer from the device in time")]
    Timeout,
    #[error("transport error: {0}")]
    Transport(String),
    #[error("the driver has stopped")]
    DriverStopped,
}

impl CommandError {
    /// A stable snake_case code for logs, metrics and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::UnknownPoint(_) => "unknown_point",
            CommandError::NotWritable(_) => "not_writable",
            CommandError::BadValue(_) => "bad_value",
            CommandError::NotConnected => "not_connected",
            CommandError::Refused(_) => "refused",
            CommandError::Timeout => "timeout",
            CommandError::Transport(_) => "transport",
            CommandError::DriverStopped => "driver_stopped",
        }
    }
}

/// A command in flight, with the channel its result goes back on.
#[derive(Debug)]
pub struct CommandRequest {
    pub command: Command,
    pub reply: oneshot::Sender<Result<(), CommandError>>,
}

/// The sending half, held by the gateway.
#[derive(Debug, Clone)]
pub struct CommandSender {
    tx: mpsc::Sender<CommandRequest>,
}

/// The receiving half, served by the driver's run loop.
#[derive(Debug)]
pub struct CommandPort {
    pub rx: mpsc::Receiver<CommandRequest>,
}

/// A bounded command channel (commands are rare; 16 is plenty).
pub fn command_channel() -> (CommandSender, CommandPort) {
    let (tx, rx) = mpsc::channel(16);
    (CommandSender { tx }, CommandPort { rx })
}

impl CommandSender {
    /// Sends `command` and waits for the driver's answer. The caller bounds
    /// the wait with its own timeout.
    pub async fn execute(&self, command: Command) -> Result<(), CommandError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(CommandRequest { command, reply })
            .await
            .map_err(|_| CommandError::DriverStopped)?;
        answer.await.map_err(|_| CommandError::DriverStopped)?
    }
}

impl CommandRequest {
    /// Sends the result back; a caller that gave up is not an error.
    pub fn finish(self, result: Result<(), CommandError>) {
        let _ = self.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_stopped_driver() {
        let (tx, mut port) = command_channel();
        let served = tokio::spawn(async move {
            let req = port.rx.recv().await.expect("one request");
            assert_eq!(req.command.point, "p_limit");
            req.finish(Err(CommandError::NotWritable("p_limit".into())));
        });
        let r = tx
            .execute(Command {
                point: "p_limit".into(),
                value: CommandValue::Analog(50.0),
            })
            .await;
        assert_eq!(r, Err(CommandError::NotWritable("p_limit".into())));
        served.await.expect("served");
        // The port is gone now: the driver has stopped.
        let r = tx
            .execute(Command {
                point: "x".into(),
                value: CommandValue::Binary(true),
            })
            .await;
        assert_eq!(r, Err(CommandError::DriverStopped));
    }

    #[test]
    fn value_json_shape() {
        let v: CommandValue = serde_json::from_str(r#"{"kind":"analog","value":42.5}"#).unwrap();
        assert_eq!(v, CommandValue::Analog(42.5));
        let v: CommandValue = serde_json::from_str(r#"{"kind":"binary","value":true}"#).unwrap();
        assert_eq!(v, CommandValue::Binary(true));
        assert_eq!(CommandError::Timeout.code(), "timeout");
    }
}
