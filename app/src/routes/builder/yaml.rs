//! The YAML tab: a textarea over a coloured copy of its text, with line numbers and the lines
//! that have problems marked.
//!
//! The textarea stays the editor (native caret, selection, undo, input methods, screen
//! readers); its text is transparent and a `<pre>` behind it, scrolled with it, shows the same
//! characters coloured. Colouring is a line lexer, not a parser: it only has to look right for
//! what a person types, and it never fails.

use engine::model::Problem;
use leptos::prelude::*;

use super::Doc;

/// What a piece of a line is, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    Plain,
    Key,
    Str,
    Literal,
    Comment,
    Punct,
    Template,
}

impl Tok {
    fn class(self) -> Option<&'static str> {
        match self {
            Tok::Plain => None,
            Tok::Key => Some("y-key"),
            Tok::Str => Some("y-str"),
            Tok::Literal => Some("y-lit"),
            Tok::Comment => Some("y-com"),
            Tok::Punct => Some("y-pun"),
            Tok::Template => Some("y-tpl"),
        }
    }
}

/// A line split into coloured pieces; the pieces joined give the line back.
pub fn highlight(line: &str) -> Vec<(Tok, &str)> {
    let mut out = Vec::new();
    let indent = line.len() - line.trim_start_matches(' ').len();
    if indent > 0 {
        out.push((Tok::Plain, &line[..indent]));
    }
    let mut rest = &line[indent..];
    // List dashes, any number of them (`- - x`).
    while rest == "-" || rest.starts_with("- ") {
        let spaces = rest[1..].len() - rest[1..].trim_start_matches(' ').len();
        out.push((Tok::Punct, &rest[..1 + spaces]));
        rest = &rest[1 + spaces..];
    }
    if rest.starts_with('#') {
        out.push((Tok::Comment, rest));
        return out;
    }
    if let Some(end) = key_end(rest) {
        out.push((Tok::Key, &rest[..end]));
        out.push((Tok::Punct, &rest[end..end + 1]));
        rest = &rest[end + 1..];
        let spaces = rest.len() - rest.trim_start_matches(' ').len();
        if spaces > 0 {
            out.push((Tok::Plain, &rest[..spaces]));
            rest = &rest[spaces..];
        }
    }
    value(rest, &mut out);
    out
}

/// Where a `key:` ends (the colon's index), if the text starts with one.
fn key_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    if let Some(&q) = bytes.first().filter(|b| **b == b'"' || **b == b'\'') {
        i = 1 + text[1..].find(q as char)? + 1;
    }
    while i < bytes.len() {
        match bytes[i] {
            b':' if i > 0 && (i + 1 == bytes.len() || bytes[i + 1] == b' ') => return Some(i),
            b'#' | b'{' | b'[' | b'"' | b'\'' if i == 0 => return None,
            b' ' if bytes.get(i + 1) == Some(&b'#') => return None,
            _ => i += 1,
        }
    }
    None
}

/// A value: a quoted string, a number or keyword, flow punctuation, templates, a trailing
/// comment.
fn value<'a>(text: &'a str, out: &mut Vec<(Tok, &'a str)>) {
    if text.is_empty() {
        return;
    }
    if let Some(q) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = text[1..].find(q).map_or(text.len(), |i| i + 2);
        templates(&text[..end], Tok::Str, out);
        let rest = &text[end..];
        match rest.find('#') {
            Some(i) => {
                out.push((Tok::Plain, &rest[..i]));
                out.push((Tok::Comment, &rest[i..]));
            }
            None if !rest.is_empty() => out.push((Tok::Plain, rest)),
            None => {}
        }
        return;
    }
    let (body, comment) = match text.find(" #") {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let word = body.trim_end();
    let literal = matches!(
        word,
        "true" | "false" | "null" | "~" | "|" | ">" | "|-" | ">-"
    ) || word.parse::<f64>().is_ok();
    if literal {
        out.push((Tok::Literal, body));
    } else if body.starts_with('{') || body.starts_with('[') {
        out.push((Tok::Punct, body));
    } else {
        templates(body, Tok::Str, out);
    }
    if let Some(c) = comment {
        out.push((Tok::Comment, c));
    }
}

/// `text` as `tok`, with its `{{ … }}` parts marked as templates.
fn templates<'a>(mut text: &'a str, tok: Tok, out: &mut Vec<(Tok, &'a str)>) {
    while let Some(start) = text.find("{{") {
        let end = text[start..]
            .find("}}")
            .map_or(text.len(), |i| start + i + 2);
        if start > 0 {
            out.push((tok, &text[..start]));
        }
        out.push((Tok::Template, &text[start..end]));
        text = &text[end..];
    }
    if !text.is_empty() {
        out.push((tok, text));
    }
}

/// One path segment of a problem (`steps[2].with.url` → `steps`, `[2]`, `with`, `url`).
#[derive(Debug, PartialEq)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut segs = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut pieces = part.split('[');
        if let Some(key) = pieces.next().filter(|k| !k.is_empty()) {
            segs.push(Seg::Key(key));
        }
        for index in pieces {
            if let Ok(n) = index.trim_end_matches(']').parse() {
                segs.push(Seg::Index(n));
            }
        }
    }
    segs
}

/// A line's shape: where its text starts, where a list item's dash is, its key.
struct Line<'a> {
    /// Leading spaces (a dash counts as text).
    lead: usize,
    /// The dash of a list item that starts here.
    dash: Option<usize>,
    /// Where the key (or the value) starts, after any dashes.
    content: usize,
    key: Option<&'a str>,
}

fn shape(line: &str) -> Option<Line<'_>> {
    let lead = line.len() - line.trim_start_matches(' ').len();
    let mut rest = &line[lead..];
    if rest.is_empty() || rest.starts_with('#') {
        return None;
    }
    let mut content = lead;
    let mut dash = None;
    while rest == "-" || rest.starts_with("- ") {
        dash.get_or_insert(content);
        let spaces = rest[1..].len() - rest[1..].trim_start_matches(' ').len();
        content += 1 + spaces;
        rest = &rest[1 + spaces..];
    }
    let key = key_end(rest).map(|end| rest[..end].trim_matches(|c| c == '"' || c == '\''));
    Some(Line {
        lead,
        dash,
        content,
        key,
    })
}

/// [`locate_in`] on a whole text.
#[cfg(test)]
fn locate(source: &str, path: &str) -> Option<usize> {
    let lines: Vec<Option<Line>> = source.lines().map(shape).collect();
    locate_in(&lines, path)
}

/// The line (0-based) a problem's path points at in a block-style document, given as its
/// lines' shapes: the deepest part of the path that can be found, so a problem inside a flow
/// map (`with: {url: …}`) still marks the line of `with`.
fn locate_in(lines: &[Option<Line>], path: &str) -> Option<usize> {
    let mut range = 0..lines.len();
    // The block's own indent: its children sit deeper (or at it, for a list under a key).
    let mut parent: Option<usize> = None;
    let mut found = None;
    let line = |i: usize| lines[i].as_ref();
    for seg in segments(path) {
        let hit = match seg {
            Seg::Key(k) => {
                let indent = range
                    .clone()
                    .filter_map(line)
                    .map(|l| l.content)
                    .find(|c| parent.is_none_or(|p| *c > p));
                range.clone().find(|&i| {
                    line(i).is_some_and(|l| Some(l.content) == indent && l.key == Some(k))
                })
            }
            Seg::Index(n) => {
                let dash = range.clone().filter_map(line).find_map(|l| l.dash);
                range
                    .clone()
                    .filter(|&i| line(i).is_some_and(|l| l.dash.is_some() && l.dash == dash))
                    .nth(n)
            }
        };
        let Some(at) = hit else { break };
        found = Some(at);
        let l = line(at)?;
        // A key's block ends at a line less indented, or as indented and not a list item of
        // it; an item's block at the next line at or left of its dash.
        let (own, is_item) = match seg {
            Seg::Key(_) => (l.content, false),
            Seg::Index(_) => (l.dash.unwrap_or(l.lead), true),
        };
        let end = (at + 1..range.end)
            .find(|&i| {
                line(i).is_some_and(|m| {
                    m.lead < own || (m.lead == own && (is_item || m.dash.is_none()))
                })
            })
            .unwrap_or(range.end);
        range = if is_item { at..end } else { at + 1..end };
        parent = Some(own);
        if is_item {
            // The item's first key is on the dash line itself, at its content indent.
            parent = Some(l.content - 1);
        }
    }
    found
}

/// The line (0-based) a parser's message names (`… at line 3 column 8`).
fn message_line(message: &str) -> Option<usize> {
    let rest = &message[message.rfind("line ")? + 5..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<usize>().ok()?.checked_sub(1)
}

/// The line each problem is on, where it can be told (the document is read once for all).
pub fn problem_lines(source: &str, problems: &[Problem]) -> Vec<Option<usize>> {
    let lines: Vec<Option<Line>> = source.lines().map(shape).collect();
    problems
        .iter()
        .map(|p| {
            if p.path.is_empty() {
                message_line(&p.message)
            } else {
                locate_in(&lines, &p.path)
            }
        })
        .collect()
}

/// The coloured copy's HTML: a `<span class="y-line">` per line, problem lines marked.
fn coloured(source: &str, bad: &[usize]) -> String {
    let mut html = String::with_capacity(source.len() * 2);
    for (i, line) in source.split('\n').enumerate() {
        html.push_str(if bad.contains(&i) {
            "<span class=\"y-line y-bad\">"
        } else {
            "<span class=\"y-line\">"
        });
        for (tok, text) in highlight(line.trim_end_matches('\r')) {
            match tok.class() {
                Some(c) => {
                    html.push_str("<span class=\"");
                    html.push_str(c);
                    html.push_str("\">");
                    html.push_str(&crate::escape_html(text));
                    html.push_str("</span>");
                }
                None => html.push_str(&crate::escape_html(text)),
            }
        }
        html.push_str("\n</span>");
    }
    html
}

/// The editor: line numbers, the coloured copy, the textarea on top.
#[component]
pub fn YamlEditor() -> impl IntoView {
    let doc = expect_context::<Doc>();
    let scroll = RwSignal::new((0i32, 0i32));
    // Lines with problems, each with what is wrong there.
    let marks = Memo::new(move |_| {
        let lines = doc.lines.get();
        doc.problems.with(|problems| {
            let mut marks: Vec<(usize, String)> = Vec::new();
            for (p, line) in problems.iter().zip(lines) {
                if let Some(l) = line {
                    let said = if p.path.is_empty() {
                        p.message.clone()
                    } else {
                        format!("{}: {}", p.path, p.message)
                    };
                    match marks.iter_mut().find(|(at, _)| *at == l) {
                        Some((_, m)) => {
                            m.push('\n');
                            m.push_str(&said);
                        }
                        None => marks.push((l, said)),
                    }
                }
            }
            marks
        })
    });
    let html = Memo::new(move |_| {
        let bad: Vec<usize> = marks.with(|m| m.iter().map(|(l, _)| *l).collect());
        doc.source.with(|s| coloured(s, &bad))
    });
    let count = Memo::new(move |_| doc.source.with(|s| s.split('\n').count()));
    let gutter = move || {
        let marks = marks.get();
        (1..=count.get())
            .map(|n| {
                let mark = marks
                    .iter()
                    .find(|(l, _)| *l + 1 == n)
                    .map(|(_, m)| m.clone());
                let bad = mark.is_some();
                view! { <span class="y-num" class:y-bad=bad data-line=n title=mark>{n}</span> }
            })
            .collect_view()
    };
    let shift = move || {
        let (top, left) = scroll.get();
        format!("transform: translate({}px, {}px)", -left, -top)
    };
    let shift_v = move || format!("transform: translateY({}px)", -scroll.get().0);
    view! {
        <div class="yaml-editor">
            <div class="yaml-gutter" aria-hidden="true"><div style=shift_v>{gutter}</div></div>
            <div class="yaml-code">
                <pre class="yaml-colours" aria-hidden="true"><code style=shift inner_html=move || html.get()></code></pre>
                <label class="visually-hidden" for="yaml">"Workflow YAML"</label>
                <textarea id="yaml" class="code" spellcheck="false" wrap="off"
                    autocomplete="off" autocapitalize="off"
                    aria-describedby="yaml-keys"
                    prop:value=move || doc.shown.get()
                    on:keydown=move |ev| super::indent_on_tab(&ev, doc)
                    on:scroll=move |ev| {
                        #[cfg(feature = "hydrate")]
                        {
                            use wasm_bindgen::JsCast;
                            if let Some(t) = ev.target().and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok()) {
                                scroll.set((t.scroll_top(), t.scroll_left()));
                            }
                        }
                        #[cfg(not(feature = "hydrate"))]
                        let _ = ev;
                    }
                    on:change=move |_| doc.end_typing()
                    on:input=move |ev| doc.type_text(event_target_value(&ev))></textarea>
            </div>
        </div>
        <p id="yaml-keys" class="muted">"Tab indents two spaces; Esc, then Tab, moves on. Lines with problems are marked; hover a marked number to read why."</p>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(line: &str) -> Vec<(Tok, &str)> {
        let t = highlight(line);
        assert_eq!(
            t.iter().map(|(_, s)| *s).collect::<String>(),
            line,
            "lossless"
        );
        t
    }

    #[test]
    fn lines_are_split_into_coloured_pieces_that_join_back() {
        use Tok::*;
        assert_eq!(
            toks("  - id: start # first"),
            vec![
                (Plain, "  "),
                (Punct, "- "),
                (Key, "id"),
                (Punct, ":"),
                (Plain, " "),
                (Str, "start"),
                (Comment, " # first")
            ]
        );
        assert_eq!(
            toks("    url: \"https://x/{{ inputs.id }}\""),
            vec![
                (Plain, "    "),
                (Key, "url"),
                (Punct, ":"),
                (Plain, " "),
                (Str, "\"https://x/"),
                (Template, "{{ inputs.id }}"),
                (Str, "\"")
            ]
        );
        assert_eq!(toks("max_attempts: 3")[3], (Literal, "3"));
        assert_eq!(toks("# note"), vec![(Comment, "# note")]);
        assert_eq!(toks("with: {a: 1}")[3], (Punct, "{a: 1}"));
        // Not keys: a URL's colon, a colon without a space.
        assert_eq!(
            toks("- http://x:80"),
            vec![(Punct, "- "), (Str, "http://x:80")]
        );
        for hostile in [
            "\"unclosed: x",
            "'",
            "-",
            "- - ",
            ":",
            "{{",
            "a: '{{ x",
            "ü: é # ß",
        ] {
            toks(hostile);
        }
    }

    const DOC: &str = "id: w\n# a comment\nsteps:\n- id: start\n  agent: simulate\n- id: fetch\n  agent: http\n  needs:\n  - start\n  with:\n    method: GET\n    url: ''\ninputs:\n  n:\n    type: integer\n";

    #[test]
    fn problems_are_located_on_their_lines() {
        assert_eq!(locate(DOC, "id"), Some(0));
        assert_eq!(locate(DOC, "steps"), Some(2));
        assert_eq!(locate(DOC, "steps[0]"), Some(3));
        assert_eq!(locate(DOC, "steps[1].agent"), Some(6));
        assert_eq!(locate(DOC, "steps[1].needs[0]"), Some(8));
        assert_eq!(locate(DOC, "steps[1].with.url"), Some(11));
        assert_eq!(locate(DOC, "inputs.n.type"), Some(14));
        // Deeper than the text goes: the deepest line found.
        assert_eq!(locate(DOC, "steps[1].with.url.x"), Some(11));
        assert_eq!(locate(DOC, "steps[1].with.body"), Some(9));
        assert_eq!(locate(DOC, "steps[7]"), Some(2));
        assert_eq!(locate(DOC, "nothing"), None);
        // Indented lists and flow maps.
        let indented = "steps:\n  - id: a\n    with: {url: x}\n  - id: b\n    agent: http\n";
        assert_eq!(locate(indented, "steps[1].agent"), Some(4));
        assert_eq!(locate(indented, "steps[0].with.url"), Some(2));
        let parse = Problem::new(
            "",
            "invalid YAML: mapping values are not allowed in this context at line 3 column 8",
        );
        let url = Problem::new("steps[1].with.url", "required");
        assert_eq!(problem_lines(DOC, &[parse, url]), vec![Some(2), Some(11)]);
    }

    #[test]
    fn the_coloured_copy_escapes_and_marks_lines() {
        let html = coloured("a: <b>\n- x", &[1]);
        assert!(html.contains("&lt;b&gt;"), "{html}");
        assert_eq!(html.matches("y-line").count(), 2);
        assert!(
            html.contains("<span class=\"y-line y-bad\"><span class=\"y-pun\">- </span>"),
            "{html}"
        );
    }
}
