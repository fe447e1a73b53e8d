//! Discovery: which paths the globs match now, and which directories to
//! watch so that changes are noticed.

use std::io;
use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern};

use crate::error::TailError;

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: !cfg!(windows),
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Compiled include/exclude globs.
#[derive(Debug)]
pub(crate) struct Discovery {
    include: Vec<String>,
    include_pats: Vec<Pattern>,
    exclude: Vec<Pattern>,
    roots: Vec<(PathBuf, bool)>,
}

impl Discovery {
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self, TailError> {
        if include.is_empty() {
            return Err(TailError::NoInclude);
        }
        let mut abs = Vec::new();
        for pat in include {
            let p = if Path::new(pat).is_absolute() {
                pat.clone()
            } else {
                let cwd = std::env::current_dir().map_err(|source| TailError::CurrentDir {
                    pattern: pat.clone(),
                    source,
                })?;
                cwd.join(pat).to_string_lossy().into_owned()
            };
            abs.push(p);
        }
        let compile = |p: &String| {
            Pattern::new(p).map_err(|source| TailError::Pattern {
                pattern: p.clone(),
                source,
            })
        };
        let include_pats = abs.iter().map(compile).collect::<Result<Vec<_>, _>>()?;
        let exclude = exclude.iter().map(compile).collect::<Result<Vec<_>, _>>()?;
        let mut roots: Vec<(PathBuf, bool)> = abs.iter().map(|p| root_of(p)).collect();
        roots.sort();
        roots.dedup();
        Ok(Discovery {
            include: abs,
            include_pats,
            exclude,
            roots,
        })
    }

    /// Directories to watch and whether recursively.
    pub(crate) fn roots(&self) -> &[(PathBuf, bool)] {
        &self.roots
    }

    /// Whether `path` is matched by an include and no exclude.
    pub(crate) fn matches(&self, path: &Path) -> bool {
        self.include_pats
            .iter()
            .any(|p| p.matches_path_with(path, OPTIONS))
            && !self.excluded(path)
    }

    fn excluded(&self, path: &Path) -> bool {
        let name = path.file_name().map(Path::new);
        self.exclude.iter().any(|p| {
            p.matches_path_with(path, OPTIONS)
                || name.is_some_and(|n| p.matches_path_with(n, OPTIONS))
        })
    }

    /// Paths matched now (sorted, deduplicated). Unreadable directories and
    /// similar problems go to `errors`; the rest of the scan goes on.
    pub(crate) fn scan(&self, errors: &mut Vec<(Option<PathBuf>, io::Error)>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for pat in &self.include {
            let paths = glob::glob_with(pat, OPTIONS).expect("pattern validated in Discovery::new");
            for r in paths {
                match r {
                    Ok(p) => {
                        if !self.excluded(&p) {
                            out.push(p);
                        }
                    }
                    Err(e) => {
                        let path = e.path().to_path_buf();
                        errors.push((Some(path), e.into()));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The literal directory a pattern starts from, and whether matches can be
/// below its immediate children.
fn root_of(pattern: &str) -> (PathBuf, bool) {
    let comps: Vec<Component<'_>> = Path::new(pattern).components().collect();
    let mut root = PathBuf::new();
    let mut literal = 0;
    for c in &comps {
        let s = c.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[']) {
            break;
        }
        root.push(c);
        literal += 1;
    }
    let rest = comps.len() - literal;
    if rest == 0 {
        // A plain file path: watch its directory.
        let dir = root.parent().map(Path::to_path_buf).unwrap_or(root);
        return (dir, false);
    }
    (root, rest > 1 || pattern.contains("**"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots() {
        assert_eq!(root_of("/a/b/tk-*.log"), (PathBuf::from("/a/b"), false));
        assert_eq!(root_of("/a/b/c.log"), (PathBuf::from("/a/b"), false));
        assert_eq!(
            root_of("/var/log/**/*.log"),
            (PathBuf::from("/var/log"), true)
        );
        assert_eq!(root_of("/a/*/b/*.log"), (PathBuf::from("/a"), true));
    }

    #[test]
    fn scan_matches_includes_minus_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for n in [
            "tk-maya.log",
            "tk-nuke.log",
            "tk-maya.log.1",
            "other.log",
            "tk-old.log",
        ] {
            std::fs::write(d.join(n), "x\n").unwrap();
        }
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/tk-deep.log"), "x\n").unwrap();
        let inc = vec![format!("{}/tk-*.log", d.display())];
        let disc = Discovery::new(&inc, &["tk-old.log".to_owned()]).unwrap();
        let mut errs = Vec::new();
        let names: Vec<_> = disc
            .scan(&mut errs)
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["tk-maya.log", "tk-nuke.log"]);
        assert!(errs.is_empty());
        assert!(disc.matches(&d.join("tk-x.log")));
        assert!(!disc.matches(&d.join("tk-x.log.1")));
        assert!(!disc.matches(&d.join("tk-old.log")));
        let rec = Discovery::new(&[format!("{}/**/*.log", d.display())], &[]).unwrap();
        assert_eq!(rec.scan(&mut errs).len(), 5);
        assert_eq!(rec.roots(), &[(d.to_path_buf(), true)]);
    }

    #[test]
    fn bad_pattern_is_an_error() {
        assert!(matches!(
            Discovery::new(&["/a/[".to_owned()], &[]),
            Err(TailError::Pattern { .. })
        ));
        assert!(matches!(
            Discovery::new(&[], &[]),
            Err(TailError::NoInclude)
        ));
    }
}
