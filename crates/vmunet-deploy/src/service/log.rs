//! Structured logs on standard error: one line per event, JSON (`--log-format json`, for
//! journald and log shippers) or `key=value` text.

use serde_json::{Map, Value};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `2026-12-02T10:00:00.000Z INFO message key=value ...`
    #[default]
    Text,
    /// `{"time": ..., "level": ..., "msg": ..., ...}`
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format `{other}` (text or json)")),
        }
    }
}

/// Writes log lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Log {
    /// Format.
    pub format: LogFormat,
}

impl Log {
    /// One event: `level` (`INFO`, `WARN`, `ERROR`), a message and fields.
    pub fn event(&self, level: &str, msg: &str, fields: Value) {
        let time = crate::utc_timestamp(crate::unix_now());
        let line = match self.format {
            LogFormat::Json => {
                let mut m = Map::new();
                m.insert("time".into(), time.into());
                m.insert("level".into(), level.into());
                m.insert("msg".into(), msg.into());
                if let Value::Object(f) = fields {
                    m.extend(f);
                }
                Value::Object(m).to_string()
            }
            LogFormat::Text => {
                let mut s = format!("{time} {level:5} {msg}");
                if let Value::Object(f) = fields {
                    for (k, v) in f {
                        match v {
                            Value::String(t) if !t.contains([' ', '"']) => {
                                s.push_str(&format!(" {k}={t}"))
                            }
                            other => s.push_str(&format!(" {k}={other}")),
                        }
                    }
                }
                s
            }
        };
        eprintln!("{line}");
    }

    /// An `INFO` event.
    pub fn info(&self, msg: &str, fields: Value) {
        self.event("INFO", msg, fields)
    }

    /// A `WARN` event.
    pub fn warn(&self, msg: &str, fields: Value) {
        self.event("WARN", msg, fields)
    }

    /// An `ERROR` event.
    pub fn error(&self, msg: &str, fields: Value) {
        self.event("ERROR", msg, fields)
    }
}
