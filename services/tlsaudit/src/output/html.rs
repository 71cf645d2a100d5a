//! One self-contained HTML page: grade badges, tables and findings, inline CSS, no
//! scripts, no external assets. The template (`templates/report.html.tera`) is built in
//! and registered as `report.html`, a name Tera autoescapes: every value from the
//! model, header values included, is HTML-escaped.

use std::collections::HashMap;

use tera::{Context, Tera, Value};

use super::json::Document;
use crate::report::Audit;

const TEMPLATE: &str = include_str!("../../templates/report.html.tera");
/// Ends in `.html`, so Tera's default autoescaping applies.
const NAME: &str = "report.html";

/// The page for `audits`, findings worst first.
pub fn render(audits: &[Audit]) -> anyhow::Result<String> {
    let tera = engine()?;
    let sorted: Vec<Audit> = audits.iter().map(sorted_findings).collect();
    let context = Context::from_serialize(Document::new(&sorted))?;
    Ok(tera.render(NAME, &context)?)
}

fn engine() -> anyhow::Result<Tera> {
    let mut tera = Tera::default();
    // Tera::default() escapes .html/.htm/.xml; say so explicitly rather than rely on it.
    tera.autoescape_on(vec![".html"]);
    tera.add_raw_template(NAME, TEMPLATE)?;
    tera.register_filter(
        "grade_class",
        |v: &Value, _: &HashMap<String, Value>| -> tera::Result<Value> {
            Ok(Value::from(super::grade_class(v.as_str().unwrap_or(""))))
        },
    );
    Ok(tera)
}

fn sorted_findings(audit: &Audit) -> Audit {
    let mut audit = audit.clone();
    let findings = match &mut audit {
        Audit::Headers(h) => &mut h.findings,
        Audit::Tls(t) => &mut t.findings,
        Audit::Error { .. } => return audit,
    };
    *findings = super::by_severity(findings).into_iter().cloned().collect();
    audit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::fixtures;

    fn page() -> String {
        render(&fixtures::all()).unwrap()
    }

    #[test]
    fn grades_tables_and_findings() {
        let html = page();
        assert!(
            html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
            "{html}"
        );
        assert!(
            html.contains(
                r#"<span class="badge poor" title="Mozilla Observatory grade">D+</span>"#
            ),
            "{html}"
        );
        assert!(
            html.contains(r#"<span class="badge bad" title="SSL Labs grade">T</span>"#),
            "{html}"
        );
        assert!(html.contains("<td class=\"mono\">TLS_RSA_WITH_3DES_EDE_CBC_SHA</td><td class=\"num err\">112</td>"), "{html}");
        assert!(
            html.contains("<td>SSLv3</td><td class=\"no\">no</td>"),
            "{html}"
        );
        assert!(html.contains("not trusted: unknown issuer"), "{html}");
        assert!(html.contains("x25519, secp256r1"), "{html}");
        assert!(html.contains(r#"<td class="num">-25</td>"#), "{html}");
        assert!(html.contains(r#"<td class="num">+5</td>"#), "{html}");
        assert!(html.contains("connecting: connection refused"), "{html}");
        assert!(html.contains("<h3>Summary</h3>"), "{html}");
        // Worst first: the high finding before the medium ones, the bonus last.
        let high = html.find("csp-not-implemented").unwrap();
        let medium = html.find("referrer-policy-unsafe").unwrap();
        let pass = html.find("hsts-preloaded").unwrap();
        assert!(high < medium && medium < pass);
        assert!(html.trim_end().ends_with("</html>"));
    }

    #[test]
    fn hostile_values_are_escaped() {
        let mut h = fixtures::headers();
        h.url = "https://example.org/?q=\"><img src=x onerror=alert(1)>".into();
        h.findings[0].fix = Some("<b>bold</b> & 'quoted'".into());
        let html = render(&[Audit::Headers(h)]).unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<b>bold"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;b&gt;bold&lt;&#x2F;b&gt; &amp; &#x27;quoted&#x27;"),
            "{html}"
        );
        assert!(!html.contains("<h3>Summary</h3>"), "one audit, no summary");
    }

    #[test]
    fn self_contained() {
        let html = page();
        for attr in ["src=", "href="] {
            for (i, _) in html.match_indices(attr) {
                let value = &html[i + attr.len()..];
                assert!(
                    value.starts_with("\"#"),
                    "{attr} must point inside the page: {}",
                    &html[i..(i + 60).min(html.len())]
                );
            }
        }
        for tag in ["<script", "<link", "<img", "<iframe", "@import", "url("] {
            assert!(!html.contains(tag), "{tag} in {html}");
        }
        // The audited URLs are there, as text.
        assert!(
            html.contains(r#"<h2 class="mono">http:&#x2F;&#x2F;example.org&#x2F;</h2>"#),
            "{html}"
        );
    }

    #[test]
    fn autoescape_applies_to_the_registered_name() {
        let tera = engine().unwrap();
        assert!(tera.get_template(NAME).is_ok());
        let mut ctx = Context::new();
        ctx.insert("x", "<i>");
        let mut t = engine().unwrap();
        t.add_raw_template("probe.html", "{{ x }}").unwrap();
        assert_eq!(t.render("probe.html", &ctx).unwrap(), "&lt;i&gt;");
    }
}
