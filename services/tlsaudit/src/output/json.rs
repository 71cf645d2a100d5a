//! JSON for scripts: the [`crate::report`] model as it serializes, inside a stable
//! envelope `{ "tool": "tlsaudit", "version", "generated" (RFC 3339, UTC), "audits" }`.
//! Each audit carries `"kind": "headers" | "tls" | "error"`.

use serde::Serialize;

use crate::report::Audit;

/// The top-level object.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub tool: &'static str,
    pub version: &'static str,
    pub generated: String,
    pub audits: &'a [Audit],
}

impl<'a> Document<'a> {
    /// `audits`, generated now.
    pub fn new(audits: &'a [Audit]) -> Document<'a> {
        Document {
            tool: "tlsaudit",
            version: env!("CARGO_PKG_VERSION"),
            generated: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            audits,
        }
    }
}

/// Pretty-printed, with a final newline.
pub fn render(audits: &[Audit]) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(&Document::new(audits))?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::fixtures;

    #[test]
    fn envelope_and_audits_round_trip() {
        let out = render(&fixtures::all()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["tool"], "tlsaudit");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        let generated = v["generated"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(generated).unwrap();
        assert!(generated.ends_with('Z'), "{generated}");

        let audits = v["audits"].as_array().unwrap();
        assert_eq!(audits.len(), 3);
        let h = &audits[0];
        assert_eq!(h["kind"], "headers");
        assert_eq!(h["grade"], "D+");
        assert_eq!(h["score"], 45);
        assert_eq!(h["chain"][1]["headers"][0][0], "x-evil");
        assert_eq!(h["chain"][1]["headers"][0][1], "<script>alert(1)</script>");
        assert_eq!(h["findings"][1]["severity"], "high");
        assert_eq!(h["findings"][1]["score_delta"], -25);

        let t = &audits[1];
        assert_eq!(t["kind"], "tls");
        assert_eq!(t["starttls"], "smtp");
        assert_eq!(t["rating"]["grade"], "T");
        assert_eq!(t["protocols"][3]["protocol"], "TLSv1.2");
        assert_eq!(t["protocols"][3]["ciphers"][1]["bits"], 112);
        assert_eq!(t["certificate"]["trust_error"], "unknown issuer");
        assert_eq!(t["findings"][0]["cap"], "B");

        assert_eq!(
            audits[2],
            serde_json::json!({
                "kind": "error",
                "target": "down.example.org:443",
                "error": "connecting: connection refused"
            })
        );
        assert!(out.ends_with("}\n"));
    }
}
