//! Reading flows, one JSON object per line, bare (`monitor -o json`) or wrapped as the flow
//! exporter writes them (`{"flow": {...}, "node_name": ..., "time": ...}`).

use super::{ExportedFlow, Flow};
use std::path::Path;

/// A flow with the line it was read from.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub line: usize,
    pub flow: Flow,
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FlowReadError {
    #[error("{path}: {source}")]
    #[diagnostic(code(cilium_policy::flows_io))]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a JSON object: {message}")]
    #[diagnostic(code(cilium_policy::flows_json))]
    Json {
        path: String,
        line: usize,
        message: String,
    },
    /// A field is missing or has the wrong type or value.
    #[error("{path}:{line}: field `{field}`: {message}")]
    #[diagnostic(code(cilium_policy::flows_field))]
    Field {
        path: String,
        line: usize,
        field: String,
        message: String,
    },
}

/// serde's message without its own "at line L column C" (the line is ours, the JSON one line).
fn message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(at) => s[..at].to_string(),
        None => s,
    }
}

/// Parses one line; `Err((field, message))`, field empty when the line is not JSON at all.
fn parse_line(text: &str) -> Result<Flow, (Option<String>, String)> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| (None, message(&e)))?;
    let wrapped = value.get("flow").is_some();
    let err = |e: serde_path_to_error::Error<serde_json::Error>| {
        let path = e.path().to_string();
        let inner = message(e.inner());
        // A missing field is reported at its parent; name the field itself.
        let field = match inner.strip_prefix("missing field `") {
            Some(rest) => {
                let name = rest.trim_end_matches('`');
                if path == "." {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                }
            }
            None => path,
        };
        (Some(field), inner)
    };
    if wrapped {
        serde_path_to_error::deserialize::<_, ExportedFlow>(value)
            .map(|w| w.flow)
            .map_err(err)
    } else {
        serde_path_to_error::deserialize::<_, Flow>(value).map_err(err)
    }
}

/// Parses flows from `text` (read from `path`); blank lines are skipped.
pub fn parse_flows(path: &str, text: &str) -> Result<Vec<Recorded>, FlowReadError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(raw) {
            Ok(flow) => out.push(Recorded { line, flow }),
            Err((None, message)) => {
                return Err(FlowReadError::Json {
                    path: path.to_string(),
                    line,
                    message,
                })
            }
            Err((Some(field), message)) => {
                return Err(FlowReadError::Field {
                    path: path.to_string(),
                    line,
                    field,
                    message,
                })
            }
        }
    }
    Ok(out)
}

/// Reads the flows of the file at `path`.
pub fn read_flows(path: &Path) -> Result<Vec<Recorded>, FlowReadError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| FlowReadError::Io {
        path: p.clone(),
        source,
    })?;
    parse_flows(&p, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowVerdict, Layer4, TrafficDirection};

    const BARE: &str = r#"{"time":"2026-12-01T10:00:00Z","verdict":"DROPPED","drop_reason_desc":"POLICY_DENIED","IP":{"source":"10.0.0.1","destination":"10.0.0.2","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":40000,"destination_port":80}},"source":{"ID":12,"identity":3001,"namespace":"a","pod_name":"x","labels":["k8s:app=x"]},"destination":{"namespace":"a","pod_name":"y"},"traffic_direction":"INGRESS","Summary":"TCP Flags: SYN"}"#;

    #[test]
    fn bare_and_wrapped_lines_read_alike() {
        let wrapped = format!(r#"{{"flow":{BARE},"node_name":"n1","time":"t"}}"#);
        let text = format!("{BARE}\n\n{wrapped}\n");
        let flows = parse_flows("f.json", &text).expect("parses");
        assert_eq!(flows.len(), 2);
        assert_eq!((flows[0].line, flows[1].line), (1, 3));
        assert_eq!(flows[0].flow, flows[1].flow);
        let f = &flows[0].flow;
        assert_eq!(f.verdict, FlowVerdict::Dropped);
        assert_eq!(f.traffic_direction, TrafficDirection::Ingress);
        assert_eq!(
            f.l4,
            Some(Layer4::Tcp(crate::flow::Ports {
                source_port: 40000,
                destination_port: 80
            }))
        );
        assert_eq!(f.source.pod_name, "x");
        assert!(f.policy_drop());
    }

    #[test]
    fn a_bad_line_names_file_line_and_field() {
        let bad_port = BARE.replace("\"destination_port\":80", "\"destination_port\":70000");
        let text = format!("{BARE}\n{bad_port}\n");
        let e = parse_flows("f.json", &text).unwrap_err().to_string();
        assert!(
            e.starts_with("f.json:2: field `l4.TCP.destination_port`"),
            "{e}"
        );
        let no_verdict = BARE.replace("\"verdict\":\"DROPPED\",", "");
        let e = parse_flows("f.json", &no_verdict).unwrap_err().to_string();
        assert!(
            e.starts_with("f.json:1: field `verdict`: missing field"),
            "{e}"
        );
        let bad_verdict = BARE.replace("DROPPED", "LOST");
        let e = parse_flows("f.json", &bad_verdict).unwrap_err().to_string();
        assert!(
            e.starts_with("f.json:1: field `verdict`: unknown variant `LOST`"),
            "{e}"
        );
        let e = parse_flows("f.json", "{\"verdict\": ")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("f.json:1: not a JSON object"), "{e}");
    }

    #[test]
    fn a_flow_written_reads_back() {
        let f = parse_flows("f", BARE).expect("parses").remove(0).flow;
        let again = parse_flows("f", &serde_json::to_string(&f).expect("writes"))
            .expect("reads back")
            .remove(0)
            .flow;
        assert_eq!(f, again);
    }
}
