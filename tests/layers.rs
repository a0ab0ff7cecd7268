//! The crate's layers, checked: no file of `src/` imports a file on a layer above it, no two
//! files import each other (directly or around a loop), and no source file is longer than
//! [`MAX_LINES`]. ARCHITECTURE.md describes the layers; [`LAYERS`] below is their one
//! machine-readable statement, and this test fails the moment either rule breaks.
//!
//! An import is any path that names another file's item outside `#[cfg(test)]`: a `use`
//! of `crate::`, `super::` or `self::`, or such a path written inline in code. Re-exports
//! (`pub use` in a `mod.rs`) are followed to the file that defines the item, so a facade
//! `mod.rs` is not a node of its own unless it defines something. Files declared only
//! under `#[cfg(test)]` (test helpers) are left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The layers, bottom to top: each top-level module of `src/` (a file or a folder) and the
/// layer it sits on. A file may import files on its own layer or below, never above.
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("metrics", 1),
    ("budget", 1),
    ("io", 2),
    ("cpu", 2),
    ("device", 2),
    ("plot", 2),
    ("fusion", 3),
    ("encoders", 4),
    ("data", 5),
    ("engine", 6),
    ("config", 7),
    ("store", 8),
    ("predict", 9),
    ("train", 10),
    ("export", 10),
    ("serve", 10),
    ("experiments", 11),
    ("cli", 12),
    ("lib", 13),
];

/// The longest a source file of `src/` may be.
const MAX_LINES: usize = 900;

/// One source file: its module path (`["engine", "maxout"]`) and what it says.
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
    ast: syn::File,
    lines: usize,
}

fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && a.meta.require_list().is_ok_and(|l| l.tokens.to_string().trim() == "test"))
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// What one file defines, re-exports and refers to (outside `#[cfg(test)]`).
#[derive(Default)]
struct Facts {
    /// Names of the items defined here.
    defines: BTreeSet<String>,
    /// `pub use` re-exports: the name seen here and the path it stands for (as written).
    reexports: BTreeMap<String, Vec<String>>,
    /// Every path used: `use` trees flattened, and paths written in code.
    uses: Vec<Vec<String>>,
    /// Child modules declared only under `#[cfg(test)]`.
    test_children: BTreeSet<String>,
}

fn flatten_use(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut full = prefix.clone();
            let name = n.ident.to_string();
            if name != "self" {
                full.push(name.clone());
            }
            let alias = if name == "self" { prefix.last().cloned().unwrap_or_default() } else { name };
            out.push((full, alias));
        }
        syn::UseTree::Rename(r) => {
            let mut full = prefix.clone();
            full.push(r.ident.to_string());
            out.push((full, r.rename.to_string()));
        }
        syn::UseTree::Glob(_) => out.push((prefix.clone(), "*".into())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

struct PathCollector<'a> {
    facts: &'a mut Facts,
}

impl<'ast> Visit<'ast> for PathCollector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_cfg_test(item_attrs(item)) {
            if let syn::Item::Mod(m) = item
                && m.content.is_none()
            {
                self.facts.test_children.insert(m.ident.to_string());
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut flat = Vec::new();
        flatten_use(&u.tree, &mut Vec::new(), &mut flat);
        let public = !matches!(u.vis, syn::Visibility::Inherited);
        for (path, alias) in flat {
            if public && alias != "*" {
                self.facts.reexports.insert(alias, path.clone());
            } else {
                self.facts.uses.push(path);
            }
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if matches!(segs.first().map(String::as_str), Some("crate" | "super" | "self")) && segs.len() > 1 {
            self.facts.uses.push(segs);
        }
        syn::visit::visit_path(self, p);
    }
}

fn facts(ast: &syn::File) -> Facts {
    let mut facts = Facts::default();
    for item in &ast.items {
        if is_cfg_test(item_attrs(item)) {
            continue;
        }
        let name = match item {
            syn::Item::Const(i) => Some(i.ident.to_string()),
            syn::Item::Enum(i) => Some(i.ident.to_string()),
            syn::Item::Fn(i) => Some(i.sig.ident.to_string()),
            syn::Item::Static(i) => Some(i.ident.to_string()),
            syn::Item::Struct(i) => Some(i.ident.to_string()),
            syn::Item::Trait(i) => Some(i.ident.to_string()),
            syn::Item::Type(i) => Some(i.ident.to_string()),
            syn::Item::Union(i) => Some(i.ident.to_string()),
            syn::Item::Macro(i) => i.ident.as_ref().map(|i| i.to_string()),
            syn::Item::Mod(i) if i.content.is_some() => Some(i.ident.to_string()),
            _ => None,
        };
        facts.defines.extend(name);
    }
    PathCollector { facts: &mut facts }.visit_file(ast);
    facts
}

/// The crate as files and the import edges between them.
struct Crate {
    files: Vec<SourceFile>,
    facts: Vec<Facts>,
    by_module: HashMap<Vec<String>, usize>,
}

impl Crate {
    fn read() -> Crate {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut paths = Vec::new();
        rust_files(&src, &mut paths);
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            if path.file_name().is_some_and(|n| n == "main.rs") {
                continue; // the binary: a crate of its own above the library
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            files.push(SourceFile { module: module_path(&src, &path), path, ast, lines: text.lines().count() });
        }
        let facts: Vec<Facts> = files.iter().map(|f| facts(&f.ast)).collect();
        // Leave out files that are declared only under #[cfg(test)].
        let test_only: BTreeSet<Vec<String>> = files
            .iter()
            .zip(&facts)
            .flat_map(|(f, facts)| {
                facts.test_children.iter().map(move |c| {
                    let mut m = f.module.clone();
                    m.push(c.clone());
                    m
                })
            })
            .collect();
        let (files, facts): (Vec<_>, Vec<_>) =
            files.into_iter().zip(facts).filter(|(f, _)| !test_only.iter().any(|t| f.module.starts_with(t))).unzip();
        let by_module = files.iter().enumerate().map(|(i, f)| (f.module.clone(), i)).collect();
        Crate { files, facts, by_module }
    }

    /// The absolute module path that a path written in `file` stands for, or `None` for
    /// another crate's path.
    fn absolute(&self, file: usize, path: &[String]) -> Option<Vec<String>> {
        let here = &self.files[file].module;
        let first = path.first()?;
        let mut base: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => here.clone(),
            "super" => {
                let mut b = here.clone();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    b.pop();
                    rest = &rest[1..];
                }
                b.extend(rest.iter().cloned());
                return Some(b);
            }
            _ => {
                // A 2018-style relative path into a child module.
                let mut child = here.clone();
                child.push(first.clone());
                if self.by_module.contains_key(&child) {
                    here.clone()
                } else {
                    return None;
                }
            }
        };
        let skip = usize::from(matches!(first.as_str(), "crate" | "self"));
        base.extend(path[skip..].iter().cloned());
        Some(base)
    }

    /// The file that defines what an absolute path names.
    fn resolve(&self, path: &[String], depth: usize) -> Option<usize> {
        // The longest prefix that is a file's module.
        let (module_len, file) =
            (0..=path.len()).rev().find_map(|n| self.by_module.get(&path[..n]).map(|&f| (n, f)))?;
        let rest = &path[module_len..];
        let Some(name) = rest.first() else { return Some(file) };
        if depth < 8
            && !self.facts[file].defines.contains(name)
            && let Some(target) = self.facts[file].reexports.get(name)
        {
            let mut target = self.absolute(file, target)?;
            target.extend(rest[1..].iter().cloned());
            return self.resolve(&target, depth + 1).or(Some(file));
        }
        Some(file)
    }

    /// Edges file -> file with the paths behind each.
    fn edges(&self) -> BTreeMap<(usize, usize), BTreeSet<String>> {
        let mut edges: BTreeMap<(usize, usize), BTreeSet<String>> = BTreeMap::new();
        for (i, facts) in self.facts.iter().enumerate() {
            for used in &facts.uses {
                let Some(abs) = self.absolute(i, used) else { continue };
                let Some(j) = self.resolve(&abs, 0) else { continue };
                if i != j {
                    edges.entry((i, j)).or_default().insert(used.join("::"));
                }
            }
        }
        edges
    }

    fn layer(&self, file: usize) -> (String, u32) {
        let top = self.files[file].module.first().cloned().unwrap_or_else(|| "lib".into());
        let layer = LAYERS.iter().find(|(m, _)| *m == top).map(|&(_, l)| l);
        (top.clone(), layer.unwrap_or_else(|| panic!("src module `{top}` has no layer in tests/layers.rs LAYERS")))
    }

    fn name(&self, file: usize) -> String {
        let p = &self.files[file].path;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        p.strip_prefix(root).unwrap_or(p).display().to_string()
    }
}

/// Strongly connected components of more than one file (Tarjan).
fn circles(n: usize, edges: &BTreeMap<(usize, usize), BTreeSet<String>>) -> Vec<Vec<usize>> {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges.keys() {
        adj[a].push(b);
    }
    struct Tarjan<'a> {
        adj: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for &w in &self.adj[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                    _ => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut scc = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    self.out.push(scc);
                }
            }
        }
    }
    let mut t = Tarjan {
        adj: &adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn no_import_circles() {
    let krate = Crate::read();
    let edges = krate.edges();
    let found = circles(krate.files.len(), &edges);
    let mut report = String::new();
    for scc in &found {
        report.push_str("circle:\n");
        for &a in scc {
            for &b in scc {
                if let Some(paths) = edges.get(&(a, b)) {
                    report.push_str(&format!("  {} -> {}: {:?}\n", krate.name(a), krate.name(b), paths));
                }
            }
        }
    }
    assert!(found.is_empty(), "{} import circle(s) in src/:\n{report}", found.len());
}

#[test]
fn imports_only_go_down() {
    let krate = Crate::read();
    let mut report = String::new();
    for ((a, b), paths) in krate.edges() {
        let ((ma, la), (mb, lb)) = (krate.layer(a), krate.layer(b));
        if lb > la {
            report.push_str(&format!(
                "  {} (`{ma}`, layer {la}) imports {} (`{mb}`, layer {lb}): {paths:?}\n",
                krate.name(a),
                krate.name(b)
            ));
        }
    }
    assert!(report.is_empty(), "imports that run up a layer (see LAYERS in tests/layers.rs):\n{report}");
}

#[test]
fn no_file_past_the_limit() {
    let krate = Crate::read();
    let long: Vec<String> = krate
        .files
        .iter()
        .filter(|f| f.lines > MAX_LINES)
        .map(|f| format!("{} ({} lines)", f.path.display(), f.lines))
        .collect();
    assert!(long.is_empty(), "source files past {MAX_LINES} lines: {long:?}");
}

/// The checker itself finds a circle and a climb when one is there: two files that
/// import each other, written into a scratch crate.
#[test]
fn the_checker_sees_a_planted_circle() {
    let a = syn::parse_file("use crate::b::B; pub struct A;").unwrap();
    let b = syn::parse_file("use crate::a::A; pub struct B; #[cfg(test)] mod tests { use crate::c::C; }").unwrap();
    let c = syn::parse_file("pub struct C;").unwrap();
    let files: Vec<SourceFile> = [("a", a), ("b", b), ("c", c)]
        .into_iter()
        .map(|(m, ast)| SourceFile {
            path: PathBuf::from(format!("src/{m}.rs")),
            module: vec![m.into()],
            ast,
            lines: 1,
        })
        .collect();
    let facts = files.iter().map(|f| facts(&f.ast)).collect();
    let by_module = files.iter().enumerate().map(|(i, f)| (f.module.clone(), i)).collect();
    let krate = Crate { files, facts, by_module };
    let edges = krate.edges();
    assert_eq!(
        edges.keys().copied().collect::<Vec<_>>(),
        vec![(0, 1), (1, 0)],
        "the test module's import is not an edge"
    );
    assert_eq!(circles(3, &edges), vec![vec![1, 0]]);
}

/// Every path of the repository that the docs name exists: `src/…`, `tests/…`,
/// `benches/…`, `bench/…`, `scripts/…`, `docs/…` and `data/…` in the README,
/// ARCHITECTURE.md, BENCHMARKS.md, `docs/*.md` and Cargo.toml's comments.
#[test]
fn the_docs_name_only_paths_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs =
        vec![root.join("README.md"), root.join("ARCHITECTURE.md"), root.join("BENCHMARKS.md"), root.join("Cargo.toml")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    // What `.gitignore` names from the root (`/bench/.venv/`) is made at run time, not shipped.
    let ignored: Vec<String> = std::fs::read_to_string(root.join(".gitignore"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix('/'))
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    let mut missing = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for (n, line) in text.lines().enumerate() {
            for start in ["src/", "tests/", "benches/", "bench/", "scripts/", "docs/", "data/"] {
                let mut rest = line;
                while let Some(at) = rest.find(start) {
                    // A path starts the word: not `mysrc/…`, not inside a longer path (`../shared/data/`).
                    let before = rest[..at].chars().next_back();
                    let tail = &rest[at..];
                    let end = tail.find(|c: char| !(c.is_alphanumeric() || "/_.-+".contains(c))).unwrap_or(tail.len());
                    let path = tail[..end].trim_end_matches(['.', '/']);
                    rest = &tail[end.max(1)..];
                    if before.is_some_and(|c| c.is_alphanumeric() || "/._-".contains(c)) || path.contains('*') {
                        continue;
                    }
                    // `docs/` names inside docs/*.md are relative to the repository root too.
                    if path.len() > start.len()
                        && !root.join(path).exists()
                        && !ignored.iter().any(|i| path.starts_with(i.as_str()))
                    {
                        missing.push(format!("{}:{}: {path}", doc.strip_prefix(root).unwrap().display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "paths the docs name that do not exist:\n{}", missing.join("\n"));
}
