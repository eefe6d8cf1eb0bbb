//! A checker's figures as HTML: an object one row per field, a list of
//! records (digests, states) as a table of its own. A leaf: the escaping
//! is given by the caller (`html::esc`), as `members.rs` takes it.

use serde_json::Value;
use std::fmt::Write as _;

/// How text is escaped for HTML.
pub(crate) type Esc = fn(&str) -> String;

/// `detail`'s fields, one row each; a list of records as a table.
pub(crate) fn table(detail: &Value, esc: Esc) -> String {
    let Some(fields) = detail.as_object() else {
        return String::new();
    };
    let mut out = String::from("<table>");
    for (key, value) in fields {
        let shown = match value.as_array() {
            Some(rows) if rows.iter().all(Value::is_object) && !rows.is_empty() => {
                records(rows, esc)
            }
            _ => format!("<code>{}</code>", esc(&value.to_string())),
        };
        let _ = write!(out, "<tr><th>{}</th><td>{shown}</td></tr>", esc(key));
    }
    out + "</table>"
}

/// Records with the same fields as a table, the first one's keys as columns.
fn records(rows: &[Value], esc: Esc) -> String {
    let keys: Vec<&String> = rows[0]
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let mut out = String::from("<table><tr>");
    for k in &keys {
        let _ = write!(out, "<th>{}</th>", esc(k));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for k in &keys {
            let cell = match &row[k.as_str()] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let _ = write!(out, "<td><code>{}</code></td>", esc(&cell));
        }
        out.push_str("</tr>");
    }
    out + "</table>"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_become_a_table_and_other_fields_rows() {
        let esc: Esc = |s| s.replace('<', "&lt;");
        let detail = json!({"height": 88, "states": [{"node": "n1", "registers": "a<b"}, {"node": "n3", "registers": "cd"}]});
        let html = table(&detail, esc);
        assert!(
            html.contains("<th>height</th><td><code>88</code></td>"),
            "{html}"
        );
        assert!(html.contains("<th>node</th><th>registers</th>"), "{html}");
        assert!(html.contains("<td><code>a&lt;b</code></td>"), "{html}");
        assert_eq!(table(&json!("not an object"), esc), "");
    }
}
