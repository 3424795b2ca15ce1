//! Where a model's files are: which manifest a name means, and reading its labels file.

use std::path::{Path, PathBuf};

use super::{ModelError, Result};

/// The name of the model used when none is given.
pub const DEFAULT_MODEL: &str = "ced-tiny";

/// Folders searched for a model given by name, in order.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("HARK_MODEL_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd.join("models"));
    }
    if let Ok(exe) = std::env::current_exe() {
        for a in exe.ancestors().skip(1) {
            let d = a.join("models");
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    dirs.push(PathBuf::from("/usr/share/hark/models"));
    dirs
}

/// Turn what the user gave (`--model M`) into a manifest path: a manifest file, a folder with
/// one manifest in it, or a model name looked up in `model_dirs()`.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    if p.is_dir() {
        return manifest_in_dir(p);
    }
    let looks_like_path = spec.contains('/') || spec.ends_with(".toml");
    if !looks_like_path {
        for dir in model_dirs() {
            let f = dir.join(format!("{spec}.toml"));
            if f.is_file() {
                return Ok(f);
            }
            let d = dir.join(spec);
            if d.is_dir() {
                return manifest_in_dir(&d);
            }
        }
    }
    let dirs: Vec<String> = model_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    Err(ModelError::NotFound(spec.to_string(), dirs.join(", ")))
}

fn manifest_in_dir(dir: &Path) -> Result<PathBuf> {
    let preferred = dir.join("manifest.toml");
    if preferred.is_file() {
        return Ok(preferred);
    }
    let tomls: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ModelError::NotFound(format!("{} ({e})", dir.display()), String::new()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    match tomls.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ModelError::Manifest {
            path: dir.to_path_buf(),
            msg: "the folder holds no manifest (.toml)".into(),
        }),
        _ => Err(ModelError::Manifest {
            path: dir.to_path_buf(),
            msg: "the folder holds several .toml files; name one, or call it manifest.toml".into(),
        }),
    }
}

/// Read labels: a CSV with a header (column `display_name`, else `label` or `name`, else the
/// last column), or a plain text file with one label per line.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let err = |msg: String| ModelError::Labels {
        path: path.to_path_buf(),
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let labels: Vec<String> = if path.extension().is_some_and(|x| x == "csv") {
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        let headers = rdr.headers().map_err(|e| err(e.to_string()))?.clone();
        let col = ["display_name", "label", "name"]
            .iter()
            .find_map(|n| headers.iter().position(|h| h == *n))
            .unwrap_or(headers.len().saturating_sub(1));
        let mut out = Vec::new();
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| err(format!("row {}: {e}", i + 2)))?;
            let v = rec
                .get(col)
                .ok_or_else(|| err(format!("row {} has no column {}", i + 2, col + 1)))?;
            out.push(v.trim().to_string());
        }
        out
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    if labels.is_empty() {
        return Err(err("it holds no labels".into()));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_audioset_csv_keep_commas_inside_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.csv");
        std::fs::write(
            &p,
            "index,mid,display_name\n0,/m/x,\"Male speech, man speaking\"\n1,/m/y,Knock\n",
        )
        .unwrap();
        assert_eq!(
            read_labels(&p).unwrap(),
            vec!["Male speech, man speaking", "Knock"]
        );
    }

    #[test]
    fn empty_labels_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.txt");
        std::fs::write(&p, "\n\n").unwrap();
        let e = read_labels(&p).unwrap_err().to_string();
        assert!(e.contains("labels.txt") && e.contains("no labels"), "{e}");
    }
}
