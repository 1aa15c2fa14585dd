//! The report page: one self-contained HTML document (inline SVG and CSS, no script, nothing
//! fetched), built from headed sections, summary figures, plots and tables.

const STYLE: &str = "
body { margin: 0; background: #f4f5f7; color: #222; font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 0 0 6px; }
.sub { color: #555; margin: 0 0 18px; }
section { background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12); padding: 18px 20px; margin: 18px 0; }
.note { color: #666; font-size: 13px; margin: 0 0 10px; }
.stats { display: flex; flex-wrap: wrap; gap: 12px; }
.stat { background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12); padding: 10px 16px; min-width: 140px; }
.stat b { display: block; font-size: 21px; }
.stat span { color: #666; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
figure { margin: 0; overflow-x: auto; }
figure svg { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 10px; border-bottom: 1px solid #e3e3e3; text-align: right; }
th { background: #f0f1f3; font-weight: 600; }
td:last-child, th:last-child { text-align: left; }
code { background: #f0f1f3; padding: 1px 5px; border-radius: 4px; }
";

pub struct Page {
    body: String,
}

impl Page {
    pub fn new(title: &str, subtitle: &str) -> Self {
        let body = format!("<h1>{}</h1>\n<p class=\"sub\">{}</p>\n", escape(title), escape(subtitle));
        Page { body }
    }

    /// Headline figures as a row of cards: (label, value).
    pub fn stats(&mut self, items: &[(&str, String)]) {
        self.body += "<div class=\"stats\">\n";
        for (label, value) in items {
            self.body += &format!("<div class=\"stat\"><b>{}</b><span>{}</span></div>\n", escape(value), escape(label));
        }
        self.body += "</div>\n";
    }

    /// A section with a heading, a one-line note and trusted inner HTML (a plot or a table).
    pub fn section(&mut self, id: &str, heading: &str, note: &str, inner: &str) {
        self.body += &format!("<section id=\"{}\">\n<h2>{}</h2>\n", escape(id), escape(heading));
        if !note.is_empty() {
            self.body += &format!("<p class=\"note\">{}</p>\n", escape(note));
        }
        self.body += inner;
        self.body += "</section>\n";
    }

    pub fn finish(self, title: &str) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{}</main>\n</body>\n</html>\n",
            escape(title),
            self.body
        )
    }
}

/// A plot for inlining: the SVG document without any XML prologue.
pub fn figure(svg: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    format!("<figure>{}</figure>\n", &svg[start..])
}

/// A table of escaped text cells.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table>\n<tr>");
    for h in headers {
        out += &format!("<th>{}</th>", escape(h));
    }
    out += "</tr>\n";
    for row in rows {
        out += "<tr>";
        for cell in row {
            out += &format!("<td>{}</td>", escape(cell));
        }
        out += "</tr>\n";
    }
    out + "</table>\n"
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
