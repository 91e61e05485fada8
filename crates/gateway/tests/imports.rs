//! Import-direction rules for the workspace's crates, checked by reading their sources.
//! Imports run one way: no crate's module graph has a cycle; `sys/` knows nothing of the
//! rest of the gateway; `inbound/` (the SMTP session) and `admin/` (the admin API) never
//! import each other; `cli/` (the admin client) shares only `api_types` with the server;
//! `config.rs` names no clap type; and `policy` and `spf` name no I/O crate.
//! Test code (`#[cfg(test)]` items, `tests.rs` files) is exempt: tests may import anything.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

/// Crates `policy` must not name: it decides, the gateway does the I/O.
const IO_CRATES: [&str; 5] = ["tokio", "sqlx", "rustls", "mail_auth", "mail_parser"];

/// The workspace's `crates/` directory (a fixed path when compiled by plain rustc).
fn crates_dir() -> PathBuf {
    let manifest = option_env!("CARGO_MANIFEST_DIR").unwrap_or("/work/main/crates/gateway");
    Path::new(manifest).join("..")
}

// ----- Lexing -----

/// A word, `::` or punctuation character of code, with its 1-based line.
#[derive(Clone)]
struct Tok {
    text: String,
    line: usize,
}

/// Whether `c` can be part of an identifier.
fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `t` is a word token: an identifier, a keyword or `$crate`.
fn is_word(t: &str) -> bool {
    t.starts_with(|c: char| is_ident_char(c) || c == '$')
}

/// The text of token `k`, or `""` past the end.
fn text(toks: &[Tok], k: usize) -> &str {
    toks.get(k).map_or("", |t| &t.text)
}

/// Splits `src` into tokens, dropping whitespace, comments and string and char literals.
fn tokenize(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let word = |k: usize| c.get(k).is_some_and(|&ch| is_ident_char(ch));
    let (mut toks, mut line, mut i) = (Vec::new(), 1, 0);
    while i < c.len() {
        let skip = skip_literal(&c, i);
        if skip > i {
            line += c[i..skip].iter().filter(|&&ch| ch == '\n').count();
            i = skip;
            continue;
        }
        let mut end = i + 1;
        if word(i) || (c[i] == '$' && word(i + 1)) {
            while word(end) {
                end += 1;
            }
        } else if c[i] == ':' && c.get(end) == Some(&':') {
            end += 1;
        }
        let text = c[i..end].iter().collect();
        toks.push(Tok { text, line });
        i = end;
    }
    toks
}

/// If whitespace, a comment or a string or char literal starts at `i`, the index past it.
fn skip_literal(c: &[char], i: usize) -> usize {
    let at = |k: usize| c.get(k).copied().unwrap_or(' ');
    let word_start = |k: usize| k == 0 || !is_ident_char(c[k - 1]);
    let find = |from: usize, pat: &[char]| {
        let hit = (from..c.len()).find(|&k| c[k..].starts_with(pat));
        hit.map_or(c.len(), |k| k + pat.len())
    };
    match (at(i), at(i + 1)) {
        (w, _) if w.is_whitespace() => i + 1,
        ('/', '/') => find(i, &['\n']),
        ('/', '*') => block_comment_end(c, i),
        ('"', _) => quoted_end(c, i + 1),
        ('\'', '\\') => find(i + 3, &['\'']),
        ('\'', _) if at(i + 2) == '\'' => i + 3, // 'x'; otherwise a lifetime
        ('r', '"' | '#') if word_start(i) || ("bc".contains(at(i - 1)) && word_start(i - 1)) => {
            let hashes = c[i + 1..].iter().take_while(|&&ch| ch == '#').count();
            if at(i + 1 + hashes) != '"' {
                return i; // a raw identifier
            }
            let close: Vec<char> = ["\"", &"#".repeat(hashes)].concat().chars().collect();
            find(i + 2 + hashes, &close)
        }
        _ => i,
    }
}

/// The end of a `"..."` string whose body starts at `i`.
fn quoted_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() && c[i] != '"' {
        i += if c[i] == '\\' { 2 } else { 1 };
    }
    (i + 1).min(c.len())
}

/// The end of a (possibly nested) `/* */` comment starting at `i`.
fn block_comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i + 1 < c.len() {
        let step = match (c[i], c[i + 1]) {
            ('/', '*') => 1,
            ('*', '/') => -1,
            _ => 0,
        };
        depth += step;
        i += if step == 0 { 1 } else { 2 };
        if depth == 0 {
            return i;
        }
    }
    c.len()
}

// ----- Test code removal and path extraction -----

/// The index of the bracket closing the one opened at `k`.
fn matching(toks: &[Tok], k: usize) -> usize {
    let mut depth = 0;
    for (j, t) in toks.iter().enumerate().skip(k) {
        match t.text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" if depth == 1 => return j,
            ")" | "]" | "}" => depth -= 1,
            _ => {}
        }
    }
    toks.len()
}

/// The index just past the item (or field, or statement) starting at `j`.
fn item_end(toks: &[Tok], j: usize) -> usize {
    let mut depth = 0;
    for k in j..toks.len() {
        match text(toks, k) {
            "{" if depth == 0 => return matching(toks, k) + 1,
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" if depth == 0 => return k,
            ")" | "]" | "}" => depth -= 1,
            ";" | "," if depth == 0 => return k + 1,
            _ => {}
        }
    }
    toks.len()
}

/// Drops the items marked `#[cfg(test)]`, such as an inline `mod tests { }`.
fn drop_test_items(toks: Vec<Tok>) -> Vec<Tok> {
    const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
    let (mut kept, mut i) = (Vec::new(), 0);
    while i < toks.len() {
        if !(0..7).all(|k| text(&toks, i + k) == CFG_TEST[k]) {
            kept.push(toks[i].clone());
            i += 1;
            continue;
        }
        let mut j = i + 7;
        while text(&toks, j) == "#" {
            j = matching(&toks, j + 1) + 1; // further attributes
        }
        j = match (text(&toks, j), text(&toks, j + 1)) {
            ("pub", "(") => matching(&toks, j + 1) + 1,
            ("pub", _) => j + 1,
            _ => j,
        };
        i = item_end(&toks, j);
    }
    kept
}

/// A path written in code: its segments, the module it is written in, and its line.
struct Ref {
    segs: Vec<String>,
    base: Vec<String>,
    line: usize,
}

/// Whether a path (`a::b`, or the `x` of `use x;` / `extern crate x;`) starts at token `i`.
fn starts_path(toks: &[Tok], i: usize) -> bool {
    let back = |n: usize| i.checked_sub(n).map_or("", |k| text(toks, k));
    let tail = back(1) == "::" && ((is_word(back(2)) && back(2) != "use") || back(2) == ">");
    let extern_crate = back(1) == "crate" && back(2) == "extern";
    let head = text(toks, i + 1) == "::" || back(1) == "use" || extern_crate;
    is_word(text(toks, i)) && head && !tail
}

/// Parses the path or use-tree at `i` into `out`, after the segments `segs`;
/// returns the index just past it.
fn parse_tree(toks: &[Tok], mut i: usize, mut segs: Vec<String>, out: &mut Vec<Ref>) -> usize {
    let line = toks[i].line;
    loop {
        match text(toks, i) {
            "{" => {
                i += 1;
                while !matches!(text(toks, i), "}" | "") {
                    let comma = text(toks, i) == ",";
                    let next = if comma {
                        i
                    } else {
                        parse_tree(toks, i, segs.clone(), out)
                    };
                    i = next.max(i + 1);
                }
                return i + 1;
            }
            t if is_word(t) || t == "*" => segs.push(t.into()),
            _ => break, // a turbofish `::<`
        }
        i += 1;
        if text(toks, i) != "::" {
            break;
        }
        i += 1;
    }
    i += if text(toks, i) == "as" { 2 } else { 0 };
    if !segs.is_empty() {
        out.push(Ref {
            segs,
            base: Vec::new(),
            line,
        });
    }
    i
}

/// Every path in `toks`, tracking inline `mod x { }` scopes so `self` and `super` resolve.
fn scan_refs(toks: &[Tok], module: &[String]) -> Vec<Ref> {
    let mut scope: Vec<(String, usize)> = Vec::new(); // inline module, depth it opened at
    let (mut refs, mut depth, mut i) = (Vec::new(), 0usize, 0);
    while i < toks.len() {
        match text(toks, i) {
            "mod" if text(toks, i + 2) == "{" => scope.push((text(toks, i + 1).into(), depth)),
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if scope.last().is_some_and(|s| s.1 == depth) {
                    scope.pop();
                }
            }
            _ if starts_path(toks, i) => {
                let mut paths = Vec::new();
                let next = parse_tree(toks, i, Vec::new(), &mut paths);
                let inline = scope.iter().map(|s| s.0.clone());
                let base: Vec<String> = module.iter().cloned().chain(inline).collect();
                for r in &mut paths {
                    r.base.clone_from(&base);
                }
                refs.append(&mut paths);
                i = next;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    refs
}

// ----- The module graph -----

/// One non-test source file: its module path, location, test-free tokens and paths.
struct SrcFile {
    module: String,
    rel: String,
    toks: Vec<Tok>,
    refs: Vec<Ref>,
}

/// A crate's non-test source files, and the set of their module paths.
struct Crate {
    name: String,
    files: Vec<SrcFile>,
    nodes: BTreeSet<String>,
}

/// A reference from one file node to another: where it is written and the path it uses.
struct Edge {
    from: String,
    to: String,
    at: String,
    path: String,
}

/// Whether module `m` is `area` or inside it.
fn under(m: &str, area: &str) -> bool {
    let rest = m.strip_prefix(area);
    rest.is_some_and(|r| r.is_empty() || r.starts_with("::"))
}

/// Joins module segments; the empty path is the crate root, `crate`.
fn module_key<S: AsRef<str>>(segs: &[S]) -> String {
    let segs: Vec<&str> = segs.iter().map(AsRef::as_ref).collect();
    if segs.is_empty() {
        "crate".into()
    } else {
        segs.join("::")
    }
}

/// Module segments of a file relative to `src/`: `lib.rs` is `[]`, `a/b/mod.rs` is `[a, b]`.
fn module_segs(rel: &Path) -> Vec<String> {
    let parts = rel.with_extension("");
    let mut segs: Vec<String> = parts.iter().map(|s| s.to_string_lossy().into()).collect();
    let root = segs.len() == 1 && (segs[0] == "lib" || segs[0] == "main");
    if root || segs.last().is_some_and(|s| s == "mod") {
        segs.pop();
    }
    segs
}

/// All `.rs` files under `dir`, recursively.
fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {dir:?}: {e}"));
    for path in entries.map(|e| e.expect("directory entry").path()) {
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// Reads and scans every non-test source file of the crate at `crate_dir`.
fn load_crate(crate_dir: &Path) -> Crate {
    let src = crate_dir.join("src");
    assert!(src.is_dir(), "missing source folder {}", src.display());
    let name = crate_dir.file_name().unwrap().to_string_lossy();
    let mut paths = Vec::new();
    rs_files(&src, &mut paths);
    paths.sort();
    let has_lib = src.join("lib.rs").is_file();
    let mut files = Vec::new();
    for path in paths {
        let rel = path.strip_prefix(&src).unwrap();
        if rel.starts_with("bin") || (has_lib && rel == Path::new("main.rs")) {
            continue; // binaries are crates of their own
        }
        let source = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let toks = drop_test_items(tokenize(&source));
        let segs = module_segs(rel);
        let refs = scan_refs(&toks, &segs);
        let rel = format!("{name}/src/{}", rel.display());
        files.push(SrcFile {
            module: module_key(&segs),
            rel,
            toks,
            refs,
        });
    }
    files.retain(|f: &SrcFile| !f.module.ends_with("::tests"));
    let nodes = files.iter().map(|f| f.module.clone()).collect();
    Crate {
        name: name.into(),
        files,
        nodes,
    }
}

/// The file node a path refers to (its longest existing prefix), or `None` for other crates.
fn resolve(segs: &[String], base: &[String], nodes: &BTreeSet<String>) -> Option<String> {
    let mut rest = segs.iter().map(String::as_str).peekable();
    let mut abs: Vec<&str> = base.iter().map(String::as_str).collect();
    match *rest.peek()? {
        "crate" | "$crate" => {
            abs.clear();
            rest.next();
        }
        "self" | "super" => {
            rest.next_if_eq(&"self");
            while rest.next_if_eq(&"super").is_some() {
                abs.pop();
            }
        }
        first if !nodes.contains(&module_key(&[&abs[..], &[first]].concat())) => return None,
        _ => {} // a child module, named relative to this one
    }
    abs.extend(rest);
    let mut prefixes = (0..=abs.len()).rev().map(|n| module_key(&abs[..n]));
    prefixes.find(|k| nodes.contains(k))
}

impl Crate {
    /// Every reference from one file node to a different one, in source order.
    fn edges(&self) -> Vec<Edge> {
        let mut edges = Vec::new();
        for f in &self.files {
            for r in &f.refs {
                let Some(to) = resolve(&r.segs, &r.base, &self.nodes) else {
                    continue;
                };
                if to == f.module {
                    continue;
                }
                let at = format!("{}:{}", f.rel, r.line);
                let path = r.segs.join("::").trim_end_matches("::self").to_string();
                edges.push(Edge {
                    from: f.module.clone(),
                    to,
                    at,
                    path,
                });
            }
        }
        edges
    }
}

// ----- The rules -----

/// Each node's successors in the file graph.
type Adjacency<'a> = BTreeMap<&'a str, Vec<&'a str>>;

/// The shortest cycle from `start` back to itself, as the nodes it passes.
fn shortest_cycle<'a>(adj: &Adjacency<'a>, start: &'a str) -> Option<Vec<&'a str>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(u) = queue.pop_front() {
        for &v in adj.get(u).into_iter().flatten() {
            if v == start {
                let mut path = vec![u];
                while let Some(&p) = parent.get(path[path.len() - 1]) {
                    path.push(p);
                }
                path.reverse();
                return Some(path);
            } else if !parent.contains_key(v) {
                parent.insert(v, u);
                queue.push_back(v);
            }
        }
    }
    None
}

/// Each distinct shortest cycle through some node, with the file and path of every hop.
/// Edges into the crate root are left out: it only assembles the modules.
fn cycles(krate: &Crate) -> Vec<String> {
    let edges = krate.edges();
    let mut first: BTreeMap<(&str, &str), &Edge> = BTreeMap::new();
    for e in edges.iter().filter(|e| e.to != "crate") {
        first.entry((&e.from, &e.to)).or_insert(e);
    }
    let mut adj = Adjacency::new();
    for &(from, to) in first.keys() {
        adj.entry(from).or_default().push(to);
    }
    let mut found = BTreeSet::new();
    for mut cycle in adj.keys().filter_map(|&start| shortest_cycle(&adj, start)) {
        let min = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap();
        cycle.rotate_left(min);
        found.insert(cycle);
    }
    let describe = |c: &Vec<&str>| {
        let hops = (0..c.len()).map(|k| first[&(c[k], c[(k + 1) % c.len()])]);
        let hops: Vec<String> = hops
            .map(|e| format!("\n    {} uses {}", e.at, e.path))
            .collect();
        format!(
            "{}: {} -> {}{}",
            krate.name,
            c.join(" -> "),
            c[0],
            hops.concat()
        )
    };
    found.iter().map(describe).collect()
}

/// Gateway references from modules under `layer` to modules that `allowed` rejects.
/// A missing `src/<layer>/` folder is itself reported: the rule cannot pass without it.
fn layer_violations(crates: &Path, layer: &str, allowed: &dyn Fn(&str) -> bool) -> Vec<String> {
    let gateway = crates.join("gateway");
    if !gateway.join("src").join(layer).is_dir() {
        return vec![format!("folder missing: gateway/src/{layer}/")];
    }
    let edges = load_crate(&gateway).edges().into_iter();
    let bad = edges.filter(|e| under(&e.from, layer) && !allowed(&e.to));
    let describe = |e: Edge| format!("{} uses {} (module {})", e.at, e.path, e.to);
    bad.map(describe).collect()
}

/// Every word containing `clap` in the code of gateway's `config` module(s).
fn clap_mentions(crates: &Path) -> Vec<String> {
    let krate = load_crate(&crates.join("gateway"));
    let config: Vec<&SrcFile> = krate
        .files
        .iter()
        .filter(|f| under(&f.module, "config"))
        .collect();
    if config.is_empty() {
        return vec!["gateway has no config.rs or config/ module".into()];
    }
    let words = config
        .iter()
        .flat_map(|f| f.toks.iter().map(move |t| (f, t)));
    let bad = words.filter(|(_, t)| t.text.to_lowercase().contains("clap"));
    bad.map(|(f, t)| format!("{}:{} names `{}`", f.rel, t.line, t.text))
        .collect()
}

/// Every path in a pure crate (`policy`, `spf`) whose first segment is an I/O crate.
fn io_crate_mentions(crates: &Path, name: &str) -> Vec<String> {
    let krate = load_crate(&crates.join(name));
    let refs = krate
        .files
        .iter()
        .flat_map(|f| f.refs.iter().map(move |r| (f, r)));
    let bad = refs.filter(|(_, r)| IO_CRATES.contains(&r.segs[0].as_str()));
    bad.map(|(f, r)| format!("{}:{} uses {}", f.rel, r.line, r.segs.join("::")))
        .collect()
}

/// Every `crates/*` directory that has a `src/` folder, sorted.
fn crate_dirs(crates: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(crates).unwrap_or_else(|e| panic!("cannot read {crates:?}: {e}"));
    let paths = entries.map(|e| e.expect("directory entry").path());
    let mut dirs: Vec<PathBuf> = paths.filter(|p| p.join("src").is_dir()).collect();
    dirs.sort();
    dirs
}

/// Fails listing every problem, one per line.
fn assert_clean(rule: &str, problems: Vec<String>) {
    let list = problems.join("\n");
    assert!(
        problems.is_empty(),
        "{rule}: {} problem(s)\n{list}\n",
        problems.len()
    );
}

#[test]
fn no_import_cycles() {
    let crates = crates_dir();
    let dirs = crate_dirs(&crates);
    assert!(
        dirs.iter().any(|d| d.ends_with("gateway")),
        "no gateway crate in {crates:?}"
    );
    let problems = dirs.iter().flat_map(|d| cycles(&load_crate(d))).collect();
    assert_clean("import cycles (imports must run one way)", problems);
}

#[test]
fn sys_imports_nothing_of_the_crate() {
    let problems = layer_violations(&crates_dir(), "sys", &|to| under(to, "sys"));
    assert_clean("sys/ must use nothing of the crate outside sys/", problems);
}

#[test]
fn inbound_and_admin_never_import_each_other() {
    let crates = crates_dir();
    let mut problems = layer_violations(&crates, "inbound", &|to| !under(to, "admin"));
    problems.extend(layer_violations(&crates, "admin", &|to| {
        !under(to, "inbound")
    }));
    assert_clean("inbound/ and admin/ must not import each other", problems);
}

#[test]
fn cli_imports_only_itself_and_api_types() {
    let allowed = |to: &str| under(to, "cli") || under(to, "api_types");
    let problems = layer_violations(&crates_dir(), "cli", &allowed);
    assert_clean("cli/ may use only cli/ and api_types", problems);
}

#[test]
fn config_names_no_clap_type() {
    assert_clean("config must not name clap", clap_mentions(&crates_dir()));
}

#[test]
fn policy_imports_no_io_crates() {
    assert_clean(
        "policy must not use I/O crates",
        io_crate_mentions(&crates_dir(), "policy"),
    );
}

#[test]
fn spf_imports_no_io_crates() {
    assert_clean(
        "spf must not use I/O crates: DNS comes through its Lookup trait",
        io_crate_mentions(&crates_dir(), "spf"),
    );
}
