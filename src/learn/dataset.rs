//! Reading a training or evaluation dataset: which file is which class, and which recording
//! (group) and fold each file belongs to.
//!
//! Two layouts are accepted. A folder per class, each holding audio files (any format hark
//! reads, nested folders allowed); or a `labels.csv` with at least the columns `file`
//! (relative to the dataset folder) and `label`, and optionally `group` (the recording or
//! source a clip was cut from) and `fold` (a predefined split, as UrbanSound8K and ESC-50
//! have). When `labels.csv` exists it is authoritative. This module only lists files and
//! reads the CSV; it never decodes audio, so a bad file is found (and reported) later.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// Errors in a dataset's layout. Each names the folder or file and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("dataset {}: not a folder; give a folder with one sub-folder of recordings per class (or a labels.csv)", .0.display())]
    NotAFolder(PathBuf),
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dataset {}: holds no class folders; make one folder per class (e.g. doorbell/, background/) with its recordings inside, or write a labels.csv with columns file,label", .0.display())]
    NoClasses(PathBuf),
    #[error("class folder {} is empty; put recordings of that class in it, or remove the folder", .0.display())]
    EmptyClass(PathBuf),
    #[error("dataset {} has a single class ({class}); a classifier needs at least two: add a folder of other sounds (e.g. background/) so it learns what {class} is not", .root.display())]
    OneClass { root: PathBuf, class: String },
    #[error("{}: {msg}", .path.display())]
    LabelsCsv { path: PathBuf, msg: String },
    #[error("{}: no column {column:?} (it has {}); name an existing column", .path.display(), .columns.join(", "))]
    UnknownColumn {
        path: PathBuf,
        column: String,
        columns: Vec<String>,
    },
    #[error("--group-by {column:?} needs a labels.csv; the dataset {} is a folder per class without one (use --group-pattern to derive groups from file names)", .root.display())]
    GroupByWithoutCsv { root: PathBuf, column: String },
    #[error("classes {} are not in the dataset; it has {}", .unknown.join(", "), .classes.join(", "))]
    UnknownClasses {
        unknown: Vec<String>,
        classes: Vec<String>,
    },
}

pub type Result<T> = std::result::Result<T, DatasetError>;

/// How to read a dataset.
#[derive(Debug, Clone, Default)]
pub struct DatasetOptions {
    /// A labels CSV other than `DATASET/labels.csv` (paths in it are relative to the dataset).
    pub labels_csv: Option<PathBuf>,
    /// Column of labels.csv naming each clip's recording or source (default: `group`).
    pub group_by: Option<String>,
    /// Regex on a clip's path relative to the dataset; its first capture group that matched
    /// (or the whole match, without groups) names the clip's recording.
    pub group_pattern: Option<Regex>,
    /// Keep only these classes.
    pub classes: Option<Vec<String>>,
}

/// One audio file of the dataset.
#[derive(Debug, Clone)]
pub struct Clip {
    pub path: PathBuf,
    /// Path relative to the dataset folder with `/` separators; used in reports.
    pub name: String,
    /// Index into [`Dataset::classes`].
    pub label: usize,
    /// The recording or source the clip came from; clips of one group are never split
    /// between training and testing.
    pub group: String,
    /// The dataset's own fold, when labels.csv has a `fold` column.
    pub fold: Option<String>,
}

/// A dataset's classes and clips, in a deterministic order (classes sorted by name).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub root: PathBuf,
    pub classes: Vec<String>,
    pub clips: Vec<Clip>,
    /// Where labels came from: "folders" or the labels.csv path.
    pub source: String,
    /// How clips were grouped into recordings, for reports.
    pub grouping: String,
    /// Things the user should know (files ignored, patterns that did not match).
    pub notes: Vec<String>,
}

impl Dataset {
    /// Read the dataset at `root`.
    pub fn load(root: &Path, opts: &DatasetOptions) -> Result<Dataset> {
        if !root.is_dir() {
            return Err(DatasetError::NotAFolder(root.to_path_buf()));
        }
        let csv_path = opts
            .labels_csv
            .clone()
            .or_else(|| Some(root.join("labels.csv")).filter(|p| p.is_file()));
        let mut notes = Vec::new();
        let (rows, source) = match &csv_path {
            Some(p) => (read_csv(p, opts)?, p.display().to_string()),
            None => {
                if let Some(col) = &opts.group_by {
                    return Err(DatasetError::GroupByWithoutCsv {
                        root: root.to_path_buf(),
                        column: col.clone(),
                    });
                }
                (read_folders(root, &mut notes)?, "folders".to_string())
            }
        };
        let classes = select_classes(root, &rows, opts)?;
        let (clips, unmatched) = number_clips(root, rows, &classes, opts);
        let grouping = describe_grouping(&clips, opts);
        if unmatched > 0 {
            notes.push(format!(
                "{unmatched} file(s) did not match --group-pattern; each is its own group"
            ));
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            classes,
            clips,
            source,
            grouping,
            notes,
        })
    }

    /// Whether the clips carry the dataset's own folds.
    pub fn has_folds(&self) -> bool {
        self.clips.iter().any(|c| c.fold.is_some())
    }
}

/// The classes of `rows`, sorted, narrowed to `opts.classes`; at least two.
fn select_classes(root: &Path, rows: &[Row], opts: &DatasetOptions) -> Result<Vec<String>> {
    let mut classes: Vec<String> = rows
        .iter()
        .map(|r| r.label.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Some(keep) = &opts.classes {
        let unknown: Vec<String> = keep
            .iter()
            .filter(|k| !classes.contains(k))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(DatasetError::UnknownClasses { unknown, classes });
        }
        classes.retain(|c| keep.contains(c));
    }
    if classes.is_empty() {
        return Err(DatasetError::NoClasses(root.to_path_buf()));
    }
    if classes.len() == 1 {
        return Err(DatasetError::OneClass {
            root: root.to_path_buf(),
            class: classes[0].clone(),
        });
    }
    Ok(classes)
}

/// The clips of `rows` whose class is in `classes`, with their class index and group; and
/// how many of them `--group-pattern` did not match.
fn number_clips(
    root: &Path,
    rows: Vec<Row>,
    classes: &[String],
    opts: &DatasetOptions,
) -> (Vec<Clip>, usize) {
    let mut unmatched = 0;
    let clips = rows
        .into_iter()
        .filter_map(|r| {
            let label = classes.iter().position(|c| *c == r.label)?;
            let group = match &opts.group_pattern {
                Some(re) => match group_from_name(re, &r.name) {
                    Some(g) => g,
                    None => {
                        unmatched += 1;
                        r.name.clone()
                    }
                },
                None => r.group.unwrap_or_else(|| r.name.clone()),
            };
            Some(Clip {
                path: root.join(&r.name),
                name: r.name,
                label,
                group,
                fold: r.fold,
            })
        })
        .collect();
    (clips, unmatched)
}

/// How clips were grouped into recordings, for reports.
fn describe_grouping(clips: &[Clip], opts: &DatasetOptions) -> String {
    let n_groups = clips
        .iter()
        .map(|c| &c.group)
        .collect::<BTreeSet<_>>()
        .len();
    match (&opts.group_pattern, &opts.group_by) {
        (Some(re), _) => format!("--group-pattern {:?} ({n_groups} groups)", re.as_str()),
        (None, Some(col)) => format!("column {col:?} ({n_groups} groups)"),
        (None, None) if n_groups < clips.len() => {
            format!("column \"group\" ({n_groups} groups)")
        }
        (None, None) => "one group per file".to_string(),
    }
}

/// The group a `--group-pattern` gives a clip name: the first capture group that took part
/// in the match, or the whole match when the pattern has no groups.
pub fn group_from_name(re: &Regex, name: &str) -> Option<String> {
    let caps = re.captures(name)?;
    let m = if caps.len() > 1 {
        caps.iter().skip(1).flatten().next()?
    } else {
        caps.get(0)?
    };
    Some(m.as_str().to_string())
}

/// One row before classes are numbered.
struct Row {
    name: String,
    label: String,
    group: Option<String>,
    fold: Option<String>,
}

fn read_csv(path: &Path, opts: &DatasetOptions) -> Result<Vec<Row>> {
    let err = |msg: String| DatasetError::LabelsCsv {
        path: path.to_path_buf(),
        msg,
    };
    let mut rdr = csv::Reader::from_path(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| err(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            err(format!(
                "no column {name:?} (it has {}); labels.csv needs the columns file,label and may have group and fold",
                headers.join(", ")
            ))
        })
    };
    let (file_col, label_col) = (need("file")?, need("label")?);
    let group_col = match &opts.group_by {
        Some(g) => Some(col(g).ok_or_else(|| DatasetError::UnknownColumn {
            path: path.to_path_buf(),
            column: g.clone(),
            columns: headers.clone(),
        })?),
        None => col("group"),
    };
    let fold_col = col("fold");
    let mut rows = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| err(format!("line {line}: {e}")))?;
        let get = |c: usize| rec.get(c).map(str::trim).unwrap_or("");
        let (name, label) = (get(file_col), get(label_col));
        if name.is_empty() || label.is_empty() {
            return Err(err(format!(
                "line {line}: empty file or label; every row needs both"
            )));
        }
        let fold = match fold_col {
            Some(c) if get(c).is_empty() => {
                return Err(err(format!(
                    "line {line}: empty fold; fill the fold column on every row or remove it"
                )))
            }
            Some(c) => Some(get(c).to_string()),
            None => None,
        };
        rows.push(Row {
            name: name.to_string(),
            label: label.to_string(),
            group: group_col
                .map(|c| get(c).to_string())
                .filter(|g| !g.is_empty()),
            fold,
        });
    }
    if rows.is_empty() {
        return Err(err("it lists no files".into()));
    }
    Ok(rows)
}

fn read_folders(root: &Path, notes: &mut Vec<String>) -> Result<Vec<Row>> {
    let mut class_dirs = BTreeMap::new();
    let mut loose = 0;
    for entry in read_dir_sorted(root)? {
        if entry.is_dir() && entry.join("manifest.toml").is_file() {
            // A model folder written by `hark train --out DATASET/model`: not a class.
            notes.push(format!(
                "{} holds a model (manifest.toml), not recordings; it was ignored",
                entry.display()
            ));
        } else if entry.is_dir() {
            let name = file_name(&entry);
            class_dirs.insert(name, entry);
        } else {
            loose += 1;
        }
    }
    if loose > 0 {
        notes.push(format!(
            "{loose} file(s) directly in {} are in no class folder and were ignored",
            root.display()
        ));
    }
    let mut rows = Vec::new();
    for (class, dir) in class_dirs {
        let mut files = Vec::new();
        collect_files(&dir, &mut files)?;
        if files.is_empty() {
            return Err(DatasetError::EmptyClass(dir));
        }
        for f in files {
            let rel = f.strip_prefix(root).unwrap_or(&f);
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            rows.push(Row {
                name,
                label: class.clone(),
                group: None,
                fold: None,
            });
        }
    }
    Ok(rows)
}

/// Regular files under `dir`, recursively, sorted, hidden ones (`.DS_Store`, `.git`) skipped.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for p in read_dir_sorted(dir)? {
        if p.is_dir() {
            collect_files(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let p = e.map_err(io)?.path();
        if !file_name(&p).starts_with('.') {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn folders_become_sorted_classes_and_files_their_own_groups() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("dog/a.wav"));
        touch(&d.path().join("dog/sub/b.wav"));
        touch(&d.path().join("cat/c.wav"));
        touch(&d.path().join("cat/.DS_Store"));
        touch(&d.path().join("model/manifest.toml"));
        let ds = Dataset::load(d.path(), &DatasetOptions::default()).unwrap();
        assert_eq!(ds.classes, vec!["cat", "dog"]);
        let names: Vec<&str> = ds.clips.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["cat/c.wav", "dog/a.wav", "dog/sub/b.wav"]);
        assert_eq!(ds.clips[2].group, "dog/sub/b.wav");
        assert_eq!(ds.grouping, "one group per file");
        assert!(ds.notes[0].contains("holds a model"), "{:?}", ds.notes);
    }

    #[test]
    fn an_empty_class_folder_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("dog/a.wav"));
        std::fs::create_dir_all(d.path().join("doorbell")).unwrap();
        let e = Dataset::load(d.path(), &DatasetOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("doorbell") && e.contains("empty"), "{e}");
    }

    #[test]
    fn a_single_class_is_an_error_that_says_to_add_another() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("dog/a.wav"));
        let e = Dataset::load(d.path(), &DatasetOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("single class") && e.contains("background"),
            "{e}"
        );
    }

    #[test]
    fn labels_csv_gives_folds_and_pattern_gives_groups() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("labels.csv"),
            "file,label,fold\nx/1-100-A.ogg,a,1\nx/1-100-B.ogg,a,1\nx/2-200-A.ogg,b,2\nx/odd.wav,b,2\n",
        )
        .unwrap();
        let opts = DatasetOptions {
            group_pattern: Some(Regex::new(r"\d+-(\d+)-").unwrap()),
            ..Default::default()
        };
        let ds = Dataset::load(d.path(), &opts).unwrap();
        let groups: Vec<&str> = ds.clips.iter().map(|c| c.group.as_str()).collect();
        assert_eq!(groups, vec!["100", "100", "200", "x/odd.wav"]);
        assert!(ds.has_folds());
        assert_eq!(ds.clips[2].fold.as_deref(), Some("2"));
        assert!(
            ds.notes[0].contains("1 file(s) did not match"),
            "{:?}",
            ds.notes
        );
    }

    #[test]
    fn a_missing_column_names_the_columns_there_are() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("labels.csv"), "path,class\na.wav,x\n").unwrap();
        let e = Dataset::load(d.path(), &DatasetOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"file\"") && e.contains("path, class"), "{e}");
    }
}
