//! Exceptions and stack traces: recognising exception types in text and
//! parsing Python, Java/Kotlin, Rust, Go and JavaScript (V8) traces into
//! frames.
//!
//! Parsers are line-based and forgiving: lines they do not understand are
//! skipped, never fatal. Frames are kept in the order the runtime printed
//! them. `in_app` is a heuristic: frames from the standard library, the
//! runtime, and third-party packages (site-packages, node_modules, Go module
//! cache, cargo registry, well-known JVM frameworks) are not in-app.

use serde::{Deserialize, Serialize};

/// The runtime that printed a stack trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Java,
    Rust,
    Go,
    JavaScript,
}

/// One stack frame.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Frame {
    /// Module, package or class (`app.handlers`, `com.acme.Billing`,
    /// `myapp::handler`, `github.com/acme/app/pkg`).
    pub module: Option<String>,
    /// Function or method name.
    pub function: Option<String>,
    /// Source file as printed.
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// Whether the frame belongs to the application (heuristic).
    pub in_app: bool,
}

/// One exception of a (possibly chained) error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exception {
    /// Exception type: `ValueError`, `java.lang.IllegalStateException`,
    /// `panic`, `TypeError`.
    pub ty: String,
    /// The message that came with it.
    pub value: String,
    pub frames: Vec<Frame>,
}

/// A parsed stack trace: one exception, or a chain of them in printed order
/// (Python prints the cause first, Java the outermost first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackTrace {
    pub language: Language,
    pub exceptions: Vec<Exception>,
}

impl StackTrace {
    /// The exception users see first: the one raised last in Python, the
    /// outermost in Java, the only one elsewhere.
    pub fn primary(&self) -> Option<&Exception> {
        match self.language {
            Language::Python => self.exceptions.last(),
            _ => self.exceptions.first(),
        }
    }

    /// All frames of all exceptions.
    pub fn frames(&self) -> impl Iterator<Item = &Frame> {
        self.exceptions.iter().flat_map(|e| e.frames.iter())
    }
}

/// Parses the first stack trace found in `text`.
pub fn parse_stack(text: &str) -> Option<StackTrace> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.iter().any(|l| {
        l.trim_start()
            .starts_with("Traceback (most recent call last)")
    }) {
        return parse_python(&lines);
    }
    if lines.iter().any(|l| l.contains("panicked at")) {
        return parse_rust(&lines);
    }
    if lines
        .iter()
        .any(|l| l.starts_with("panic: ") || is_goroutine_header(l))
    {
        return parse_go(&lines);
    }
    if lines.iter().any(|l| parse_java_frame(l).is_some()) {
        return parse_java(&lines);
    }
    if lines.iter().any(|l| parse_js_frame(l).is_some()) {
        return parse_js(&lines);
    }
    None
}

/// The exception type named in a line of text, if any: `panic` for Rust
/// and Go panics, else the first word that looks like an exception class
/// (`ValueError`, `java.lang.IllegalStateException`, `KeyboardInterrupt`).
pub fn find_exception_type(text: &str) -> Option<&str> {
    if text.contains("panicked at") || text.trim_start().starts_with("panic: ") {
        return Some("panic");
    }
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'$'))
            {
                i += 1;
            }
            let word = text[start..i].trim_end_matches('.');
            if is_exception_name(word) || (word == "Error" && b.get(i) == Some(&b':')) {
                return Some(word);
            }
        } else {
            i += 1;
        }
    }
    None
}

fn is_exception_name(word: &str) -> bool {
    let last = word.rsplit(['.', '$']).next().unwrap_or(word);
    let first_upper = last
        .as_bytes()
        .first()
        .is_some_and(|c| c.is_ascii_uppercase());
    first_upper
        && last.len() > 5
        && [
            "Error",
            "Exception",
            "Interrupt",
            "Exit",
            "Warning",
            "Panic",
            "Failure",
            "Fault",
        ]
        .iter()
        .any(|s| last.ends_with(s) && last.len() > s.len())
}

/// `Type: value` → (`Type`, `value`), when `Type` looks like a class name.
fn split_type_value(line: &str) -> Option<(&str, &str)> {
    let line = line.trim();
    let (ty, value) = match line.find(": ") {
        Some(p) => (&line[..p], line[p + 2..].trim()),
        None => (line.trim_end_matches(':'), ""),
    };
    let ok = !ty.is_empty()
        && !ty.contains(' ')
        && ty.as_bytes()[0].is_ascii_alphabetic()
        && ty
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'$'));
    ok.then_some((ty, value))
}

// ---------------------------------------------------------------- Python

fn parse_python(lines: &[&str]) -> Option<StackTrace> {
    let mut exceptions = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut in_tb = false;
    for line in lines {
        let t = line.trim_start();
        if t.starts_with("Traceback (most recent call last)") {
            in_tb = true;
            frames.clear();
            continue;
        }
        if !in_tb {
            continue;
        }
        if let Some(rest) = t.strip_prefix("File \"") {
            frames.push(python_frame(rest));
            continue;
        }
        // Source lines and carets are indented; the exception line is not.
        if line.starts_with(' ') || line.starts_with('\t') || t.is_empty() {
            continue;
        }
        if let Some((ty, value)) = split_type_value(t) {
            exceptions.push(Exception {
                ty: ty.to_owned(),
                value: value.to_owned(),
                frames: std::mem::take(&mut frames),
            });
            in_tb = false;
        }
    }
    if exceptions.is_empty() && !frames.is_empty() {
        exceptions.push(Exception {
            ty: "Traceback".to_owned(),
            value: String::new(),
            frames,
        });
    }
    (!exceptions.is_empty()).then_some(StackTrace {
        language: Language::Python,
        exceptions,
    })
}

/// `/app/x.py", line 10, in handler`
fn python_frame(rest: &str) -> Frame {
    let (file, after) = rest.split_once('"').unwrap_or((rest, ""));
    let mut line = None;
    let mut function = None;
    for part in after.split(',') {
        let part = part.trim();
        if let Some(n) = part.strip_prefix("line ") {
            line = n.trim().parse().ok();
        } else if let Some(f) = part.strip_prefix("in ") {
            function = Some(f.trim().to_owned());
        }
    }
    let norm = file.replace('\\', "/");
    let lib = [
        "site-packages/",
        "dist-packages/",
        "/lib/python",
        "<frozen",
        "/lib64/python",
    ]
    .iter()
    .any(|m| norm.contains(m));
    let module = python_module(&norm);
    Frame {
        module: Some(module),
        function,
        file: Some(file.to_owned()),
        line,
        column: None,
        in_app: !lib && !norm.starts_with('<'),
    }
}

/// Dotted module from a file path: the part after `site-packages/`, else
/// the last two path components (host-independent).
fn python_module(path: &str) -> String {
    let rel = ["site-packages/", "dist-packages/"]
        .iter()
        .find_map(|m| path.rsplit_once(m).map(|(_, r)| r))
        .unwrap_or_else(|| {
            let mut it = path.rsplitn(3, '/');
            let last = it.next().unwrap_or(path);
            match it.next() {
                Some(dir) if !dir.is_empty() => &path[path.len() - last.len() - dir.len() - 1..],
                _ => last,
            }
        });
    let rel = rel.strip_suffix(".py").unwrap_or(rel);
    let rel = rel.strip_suffix("/__init__").unwrap_or(rel);
    rel.replace('/', ".")
}

// ---------------------------------------------------------------- Java

const JVM_LIBS: [&str; 24] = [
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "groovy.",
    "org.springframework.",
    "org.apache.catalina.",
    "org.apache.tomcat.",
    "org.apache.coyote.",
    "io.netty.",
    "reactor.",
    "okhttp3.",
    "org.junit.",
    "junit.",
    "org.hibernate.",
    "com.fasterxml.",
    "org.eclipse.jetty.",
    "akka.",
    "io.grpc.",
    "org.gradle.",
];

/// `at com.foo.Bar.baz(Bar.java:42)` (Java/Kotlin/Scala).
fn parse_java_frame(line: &str) -> Option<Frame> {
    let t = line.trim_start();
    if t.len() == line.len() {
        return None;
    }
    let rest = t.strip_prefix("at ")?;
    let open = rest.find('(')?;
    if !rest.ends_with(')') || rest[..open].contains(' ') || open == 0 {
        return None;
    }
    let mut sym = &rest[..open];
    // `java.base/java.lang.Thread.run`, `app//com.acme.X.y`
    if let Some((_, s)) = sym.rsplit_once('/') {
        sym = s;
    }
    let loc = &rest[open + 1..rest.len() - 1];
    let (module, function) = match sym.rsplit_once('.') {
        Some((m, f)) => (Some(m.to_owned()), f.to_owned()),
        None => (None, sym.to_owned()),
    };
    let (file, line_no) = match loc.rsplit_once(':') {
        Some((f, l)) if l.bytes().all(|c| c.is_ascii_digit()) => {
            (Some(f.to_owned()), l.parse().ok())
        }
        _ => (Some(loc.to_owned()), None),
    };
    if let Some(f) = &file
        && !(f.contains('.') || f == "Native Method" || f == "Unknown Source" || f.starts_with("<"))
    {
        return None;
    }
    let in_app = !module
        .as_deref()
        .is_some_and(|m| JVM_LIBS.iter().any(|p| m.starts_with(p)));
    Some(Frame {
        module,
        function: Some(function),
        file,
        line: line_no,
        column: None,
        in_app,
    })
}

fn parse_java(lines: &[&str]) -> Option<StackTrace> {
    let mut exceptions: Vec<Exception> = Vec::new();
    let mut suppressed = false;
    for (idx, line) in lines.iter().enumerate() {
        if let Some(f) = parse_java_frame(line) {
            if suppressed {
                continue;
            }
            match exceptions.last_mut() {
                Some(e) => e.frames.push(f),
                None => {
                    // Frames without a header: the header is the line before.
                    let header = idx.checked_sub(1).map(|p| lines[p]).unwrap_or("");
                    let (ty, value) = java_header(header).unwrap_or(("Exception", ""));
                    exceptions.push(Exception {
                        ty: ty.to_owned(),
                        value: value.to_owned(),
                        frames: vec![f],
                    });
                }
            }
            continue;
        }
        let t = line.trim();
        if t.starts_with("...") && t.ends_with("more") {
            continue;
        }
        if let Some(rest) = t.strip_prefix("Caused by: ") {
            suppressed = false;
            if let Some((ty, value)) = java_header(rest) {
                exceptions.push(Exception {
                    ty: ty.to_owned(),
                    value: value.to_owned(),
                    frames: Vec::new(),
                });
            }
            continue;
        }
        if t.starts_with("Suppressed: ") {
            suppressed = true;
            continue;
        }
        if exceptions.is_empty()
            && let Some((ty, value)) = java_header(t)
            && lines
                .get(idx + 1)
                .is_some_and(|n| parse_java_frame(n).is_some())
        {
            exceptions.push(Exception {
                ty: ty.to_owned(),
                value: value.to_owned(),
                frames: Vec::new(),
            });
        }
    }
    (!exceptions.is_empty()).then_some(StackTrace {
        language: Language::Java,
        exceptions,
    })
}

/// `Exception in thread "main" java.lang.X: msg` or `java.lang.X: msg`.
fn java_header(line: &str) -> Option<(&str, &str)> {
    let mut t = line.trim();
    if let Some(rest) = t.strip_prefix("Exception in thread \"") {
        t = rest.split_once("\" ").map_or(rest, |(_, r)| r);
    }
    // Log prefixes before the class: take the last word before `: `.
    let head_end = t.find(": ").unwrap_or(t.len());
    let head = &t[..head_end];
    let start = head.rfind(' ').map_or(0, |p| p + 1);
    split_type_value(&t[start..])
}

// ---------------------------------------------------------------- Rust

const RUST_LIBS: [&str; 16] = [
    "std::",
    "core::",
    "alloc::",
    "<std::",
    "<core::",
    "<alloc::",
    "rust_begin_unwind",
    "__rust",
    "backtrace::",
    "tokio::",
    "futures::",
    "futures_util::",
    "<F as ",
    "__libc",
    "_start",
    "start_thread",
];

fn parse_rust(lines: &[&str]) -> Option<StackTrace> {
    let idx = lines.iter().position(|l| l.contains("panicked at"))?;
    let head = lines[idx];
    let after = &head[head.find("panicked at")? + "panicked at".len()..].trim();
    let (value, location) = if let Some(rest) = after.strip_prefix('\'') {
        // Before Rust 1.73: `panicked at 'msg', src/main.rs:5:5`
        match rest.rsplit_once("', ") {
            Some((msg, loc)) => (msg.to_owned(), loc.trim().to_owned()),
            None => (rest.to_owned(), String::new()),
        }
    } else {
        let loc = after.trim_end_matches(':').to_owned();
        let msg = lines.get(idx + 1).map(|l| l.trim()).unwrap_or("");
        let msg = if msg.starts_with("stack backtrace:") || msg.starts_with("note: ") {
            ""
        } else {
            msg
        };
        (msg.to_owned(), loc)
    };
    let mut frames = Vec::new();
    let mut i = idx + 1;
    while i < lines.len() {
        let t = lines[i].trim();
        if let Some((num, sym)) = t.split_once(": ")
            && !num.is_empty()
            && num.bytes().all(|c| c.is_ascii_digit())
        {
            let sym = strip_rust_hash(sym.trim());
            let (module, function) = split_rust_path(sym);
            let mut f = Frame {
                module,
                function: Some(function),
                ..Frame::default()
            };
            if let Some(at) = lines
                .get(i + 1)
                .map(|l| l.trim())
                .and_then(|l| l.strip_prefix("at "))
            {
                let (file, line, col) = split_file_line_col(at);
                f.file = Some(file.to_owned());
                f.line = line;
                f.column = col;
                i += 1;
            }
            let file_lib = f.file.as_deref().is_some_and(|p| {
                p.starts_with("/rustc/")
                    || p.contains("/.cargo/registry/")
                    || p.contains("/rustlib/")
            });
            f.in_app = !file_lib && !RUST_LIBS.iter().any(|p| sym.starts_with(p));
            frames.push(f);
        }
        i += 1;
    }
    if frames.is_empty() && !location.is_empty() {
        // No backtrace: the panic location is the one frame we know.
        let (file, line, col) = split_file_line_col(&location);
        frames.push(Frame {
            module: None,
            function: None,
            file: Some(file.to_owned()),
            line,
            column: col,
            in_app: true,
        });
    }
    Some(StackTrace {
        language: Language::Rust,
        exceptions: vec![Exception {
            ty: "panic".to_owned(),
            value,
            frames,
        }],
    })
}

/// `myapp::main::h1a2b3c4d5e6f7a8b` → `myapp::main`.
fn strip_rust_hash(sym: &str) -> &str {
    match sym.rsplit_once("::h") {
        Some((head, h)) if h.len() == 16 && h.bytes().all(|c| c.is_ascii_hexdigit()) => head,
        _ => sym,
    }
}

fn split_rust_path(sym: &str) -> (Option<String>, String) {
    // Split at the last `::` outside `<...>`.
    let b = sym.as_bytes();
    let mut depth = 0i32;
    let mut split = None;
    let mut i = 0;
    while i + 1 < b.len() {
        match b[i] {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b':' if depth == 0 && b[i + 1] == b':' => {
                split = Some(i);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    match split {
        Some(p) => (Some(sym[..p].to_owned()), sym[p + 2..].to_owned()),
        None => (None, sym.to_owned()),
    }
}

/// `path:line:col`, `path:line`, or `path`.
fn split_file_line_col(s: &str) -> (&str, Option<u32>, Option<u32>) {
    let num = |x: &str| -> Option<u32> { x.parse().ok() };
    if let Some((a, c)) = s.rsplit_once(':')
        && let Some(cn) = num(c)
    {
        if let Some((f, l)) = a.rsplit_once(':')
            && let Some(ln) = num(l)
        {
            return (f, Some(ln), Some(cn));
        }
        return (a, Some(cn), None);
    }
    (s, None, None)
}

// ---------------------------------------------------------------- Go

fn is_goroutine_header(l: &str) -> bool {
    l.starts_with("goroutine ") && l.trim_end().ends_with("]:")
}

fn parse_go(lines: &[&str]) -> Option<StackTrace> {
    let value = lines
        .iter()
        .find_map(|l| l.strip_prefix("panic: "))
        .map(|v| v.trim_end_matches(" [recovered]").trim().to_owned())
        .unwrap_or_default();
    let ty = if value.starts_with("runtime error") {
        "runtime error"
    } else {
        "panic"
    };
    let start = lines.iter().position(|l| is_goroutine_header(l));
    let mut frames = Vec::new();
    if let Some(start) = start {
        let mut i = start + 1;
        while i < lines.len() {
            let l = lines[i];
            if l.trim().is_empty() || is_goroutine_header(l) {
                break;
            }
            if l.starts_with('\t') || l.starts_with(' ') {
                i += 1;
                continue;
            }
            let mut func = l.trim();
            if let Some(rest) = func.strip_prefix("created by ") {
                func = rest.split(" in goroutine ").next().unwrap_or(rest);
            } else if func.ends_with(')')
                && let Some(p) = func.rfind('(')
            {
                func = &func[..p];
            }
            let (module, function) = split_go_func(func);
            let mut f = Frame {
                module: Some(module.to_owned()),
                function: Some(function.to_owned()),
                ..Frame::default()
            };
            if let Some(loc) = lines
                .get(i + 1)
                .filter(|n| n.starts_with('\t') || n.starts_with("  "))
            {
                let loc = loc.trim();
                let loc = loc.split(" +0x").next().unwrap_or(loc);
                let (file, line, _) = split_file_line_col(loc);
                f.file = Some(file.to_owned());
                f.line = line;
                i += 1;
            }
            let first = module.split('/').next().unwrap_or(module);
            let stdlib = module != "main" && !first.contains('.');
            let vendored = f.file.as_deref().is_some_and(|p| {
                p.contains("/pkg/mod/") || p.contains("/vendor/") || p.contains("/go/src/runtime/")
            });
            f.in_app = !stdlib && !vendored;
            frames.push(f);
            i += 1;
        }
    }
    if value.is_empty() && frames.is_empty() {
        return None;
    }
    Some(StackTrace {
        language: Language::Go,
        exceptions: vec![Exception {
            ty: ty.to_owned(),
            value,
            frames,
        }],
    })
}

/// `github.com/acme/app/pkg.(*T).M` → (`github.com/acme/app/pkg`, `(*T).M`).
fn split_go_func(func: &str) -> (&str, &str) {
    let slash = func.rfind('/').map_or(0, |p| p + 1);
    match func[slash..].find('.') {
        Some(p) => (&func[..slash + p], &func[slash + p + 1..]),
        None => ("", func),
    }
}

// ---------------------------------------------------------------- JavaScript

/// `at fn (/app/x.js:1:2)`, `at /app/x.js:1:2`, `at async fn (file:///x.mjs:1:2)`.
fn parse_js_frame(line: &str) -> Option<Frame> {
    let t = line.trim_start();
    if t.len() == line.len() {
        return None;
    }
    let rest = t.strip_prefix("at ")?.trim_end();
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    let (function, loc) = match rest.strip_suffix(')').and_then(|r| r.rsplit_once(" (")) {
        Some((f, loc)) => (Some(f.strip_prefix("new ").unwrap_or(f)), loc),
        None => (None, rest),
    };
    let (file, line_no, col) = split_file_line_col(loc);
    if line_no.is_none() && !matches!(file, "native" | "<anonymous>") && !file.starts_with("index ")
    {
        return None;
    }
    if function.is_none() && line_no.is_none() {
        return None;
    }
    let lib = file.contains("node_modules")
        || file.starts_with("node:")
        || file.starts_with("internal/")
        || file == "native";
    let module = js_module(file);
    Some(Frame {
        module: Some(module),
        function: function.map(str::to_owned),
        file: Some(file.to_owned()),
        line: line_no,
        column: col,
        in_app: !lib && file != "<anonymous>" && !file.starts_with("index "),
    })
}

/// Host-independent module of a JS file: the path after `node_modules/`,
/// else the last two components without extension.
fn js_module(file: &str) -> String {
    let f = file.strip_prefix("file://").unwrap_or(file);
    let f = f.split(['?', '#']).next().unwrap_or(f);
    let rel = match f.rsplit_once("node_modules/") {
        Some((_, r)) => r,
        None => {
            let mut it = f.rsplitn(3, '/');
            let last = it.next().unwrap_or(f);
            match it.next() {
                Some(dir) if !dir.is_empty() => &f[f.len() - last.len() - dir.len() - 1..],
                _ => last,
            }
        }
    };
    let rel = rel
        .rsplit_once('.')
        .map_or(rel, |(a, ext)| if ext.len() <= 4 { a } else { rel });
    rel.to_owned()
}

fn parse_js(lines: &[&str]) -> Option<StackTrace> {
    let first = lines.iter().position(|l| parse_js_frame(l).is_some())?;
    let header = lines[..first]
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .copied()
        .unwrap_or("");
    let (ty, value) = js_header(header).unwrap_or(("Error", header.trim()));
    let frames = lines[first..]
        .iter()
        .filter_map(|l| parse_js_frame(l))
        .collect();
    Some(StackTrace {
        language: Language::JavaScript,
        exceptions: vec![Exception {
            ty: ty.to_owned(),
            value: value.to_owned(),
            frames,
        }],
    })
}

fn js_header(line: &str) -> Option<(&str, &str)> {
    let t = line.trim();
    let t = t.strip_prefix("Uncaught ").unwrap_or(t);
    let head_end = t.find(": ").unwrap_or(t.len());
    let start = t[..head_end].rfind(' ').map_or(0, |p| p + 1);
    split_type_value(&t[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTHON: &str = r#"2016-04-25 08:56:12,413 [44862 ERROR sgtk.core.log] failed to load
Traceback (most recent call last):
  File "/home/alice/pipeline/app/loader.py", line 42, in load
    data = json.loads(text)
  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/home/alice/pipeline/app/main.py", line 10, in run
    load(path)
  File "/home/alice/pipeline/app/loader.py", line 44, in load
    raise ValueError("bad config %s" % path)
ValueError: bad config /tmp/x.json
"#;

    #[test]
    fn python_chained() {
        let st = parse_stack(PYTHON).expect("python trace");
        assert_eq!(st.language, Language::Python);
        assert_eq!(st.exceptions.len(), 2);
        assert_eq!(st.exceptions[0].ty, "json.decoder.JSONDecodeError");
        let e = st.primary().expect("primary");
        assert_eq!(e.ty, "ValueError");
        assert_eq!(e.value, "bad config /tmp/x.json");
        assert_eq!(e.frames.len(), 2);
        assert_eq!(e.frames[0].module.as_deref(), Some("app.main"));
        assert_eq!(e.frames[0].function.as_deref(), Some("run"));
        assert_eq!(e.frames[0].line, Some(10));
        assert!(e.frames[0].in_app);
        let lib = &st.exceptions[0].frames[1];
        assert!(!lib.in_app, "{lib:?}");
    }

    const JAVA: &str =
        "Exception in thread \"main\" java.lang.IllegalStateException: could not start
\tat com.acme.billing.Service.start(Service.java:42)
\tat com.acme.billing.Main.main(Main.java:10)
Caused by: java.io.IOException: connection refused
\tat java.base/java.net.Socket.connect(Socket.java:609)
\tat com.acme.billing.Db.open(Db.kt:17)
\t... 2 more
";

    #[test]
    fn java_caused_by() {
        let st = parse_stack(JAVA).expect("java trace");
        assert_eq!(st.language, Language::Java);
        assert_eq!(st.exceptions.len(), 2);
        let e = &st.exceptions[0];
        assert_eq!(e.ty, "java.lang.IllegalStateException");
        assert_eq!(e.value, "could not start");
        assert_eq!(
            e.frames[0].module.as_deref(),
            Some("com.acme.billing.Service")
        );
        assert_eq!(e.frames[0].function.as_deref(), Some("start"));
        assert_eq!(e.frames[0].line, Some(42));
        let c = &st.exceptions[1];
        assert_eq!(c.ty, "java.io.IOException");
        assert_eq!(c.frames.len(), 2);
        assert!(!c.frames[0].in_app);
        assert_eq!(c.frames[0].module.as_deref(), Some("java.net.Socket"));
        assert!(c.frames[1].in_app);
    }

    const RUST: &str = "thread 'main' panicked at src/handler.rs:10:5:
called `Option::unwrap()` on a `None` value
stack backtrace:
   0: rust_begin_unwind
             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/std/src/panicking.rs:645:5
   1: core::panicking::panic_fmt
             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/panicking.rs:72:14
   2: core::panicking::panic
   3: core::option::unwrap_failed
   4: myapp::handler::run
             at ./src/handler.rs:10:5
   5: myapp::main
             at ./src/main.rs:5:5
   6: core::ops::function::FnOnce::call_once
note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.
";

    #[test]
    fn rust_backtrace() {
        let st = parse_stack(RUST).expect("rust trace");
        assert_eq!(st.language, Language::Rust);
        let e = st.primary().expect("primary");
        assert_eq!(e.ty, "panic");
        assert_eq!(e.value, "called `Option::unwrap()` on a `None` value");
        let app: Vec<_> = e.frames.iter().filter(|f| f.in_app).collect();
        assert_eq!(app.len(), 2, "{app:?}");
        assert_eq!(app[0].module.as_deref(), Some("myapp::handler"));
        assert_eq!(app[0].function.as_deref(), Some("run"));
        assert_eq!(app[0].line, Some(10));
    }

    #[test]
    fn rust_old_format_without_backtrace() {
        let st = parse_stack("thread 'worker' panicked at 'index out of bounds', src/lib.rs:7:9\nnote: run with `RUST_BACKTRACE=1`").expect("panic");
        let e = st.primary().expect("primary");
        assert_eq!(e.value, "index out of bounds");
        assert_eq!(e.frames[0].file.as_deref(), Some("src/lib.rs"));
    }

    const GO: &str = "panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48f1c5]

goroutine 1 [running]:
github.com/acme/api/server.(*Server).handle(0xc000010000, {0x4b2a10, 0x5})
\t/home/u/api/server/server.go:42 +0x25
net/http.HandlerFunc.ServeHTTP(0x0?, {0x6e1f00?, 0xc0001a8000?}, 0x0?)
\t/usr/local/go/src/net/http/server.go:2136 +0x29
main.main()
\t/home/u/api/main.go:10 +0x1d

goroutine 7 [chan receive]:
main.worker()
\t/home/u/api/main.go:30 +0x40
exit status 2
";

    #[test]
    fn go_panic() {
        let st = parse_stack(GO).expect("go trace");
        assert_eq!(st.language, Language::Go);
        let e = st.primary().expect("primary");
        assert_eq!(e.ty, "runtime error");
        assert_eq!(e.frames.len(), 3, "only the panicking goroutine");
        assert_eq!(
            e.frames[0].module.as_deref(),
            Some("github.com/acme/api/server")
        );
        assert_eq!(e.frames[0].function.as_deref(), Some("(*Server).handle"));
        assert_eq!(e.frames[0].line, Some(42));
        assert!(e.frames[0].in_app);
        assert!(!e.frames[1].in_app);
        assert!(e.frames[2].in_app);
    }

    const NODE: &str = "TypeError: Cannot read properties of undefined (reading 'id')
    at getUser (/srv/app/src/users.js:10:15)
    at async Promise.all (index 0)
    at /srv/app/src/index.js:3:1
    at Module._compile (node:internal/modules/cjs/loader:1105:14)
    at Layer.handle (/srv/app/node_modules/express/lib/router/layer.js:95:5)
";

    #[test]
    fn node_stack() {
        let st = parse_stack(NODE).expect("js trace");
        assert_eq!(st.language, Language::JavaScript);
        let e = st.primary().expect("primary");
        assert_eq!(e.ty, "TypeError");
        assert_eq!(
            e.value,
            "Cannot read properties of undefined (reading 'id')"
        );
        assert_eq!(e.frames.len(), 5);
        assert_eq!(e.frames[0].function.as_deref(), Some("getUser"));
        assert_eq!(e.frames[0].module.as_deref(), Some("src/users"));
        assert!(e.frames[0].in_app);
        assert!(!e.frames[1].in_app);
        assert!(e.frames[2].in_app);
        assert!(!e.frames[3].in_app);
        assert!(!e.frames[4].in_app);
        assert_eq!(
            e.frames[4].module.as_deref(),
            Some("express/lib/router/layer")
        );
    }

    #[test]
    fn exception_types_in_text() {
        assert_eq!(find_exception_type("ValueError: bad"), Some("ValueError"));
        assert_eq!(
            find_exception_type("caught java.lang.IllegalStateException: x"),
            Some("java.lang.IllegalStateException")
        );
        assert_eq!(
            find_exception_type("thread 'main' panicked at src/x.rs:1:1:"),
            Some("panic")
        );
        assert_eq!(find_exception_type("ERROR: disk full"), None);
        assert_eq!(
            find_exception_type("KeyboardInterrupt"),
            Some("KeyboardInterrupt")
        );
        assert_eq!(find_exception_type("Error: boom"), Some("Error"));
    }
}
