//! The programs the tests run are the ones `scripts/test-tools.txt` lists, and all of them are
//! installed: a machine set up with only the README's steps can run every test.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::tools::{on_path, tools};

/// Every program the test sources start by name (`Command::new` with a string literal).
fn spawned_programs() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read tests/") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a test source");
                for rest in text.split("Command::new(\"").skip(1) {
                    if let Some((program, _)) = rest.split_once('"') {
                        found.insert(program.to_owned());
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_program_a_test_spawns_is_listed_with_its_package_and_every_listed_one_is_spawned() {
    let spawned = spawned_programs();
    let listed: BTreeSet<String> = tools().iter().map(|(p, _)| p.to_string()).collect();
    let unlisted: Vec<&String> = spawned.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "tests run {unlisted:?}, which scripts/test-tools.txt does not list: add each with its Debian package"
    );
    let unused: Vec<&String> = listed.difference(&spawned).collect();
    assert!(
        unused.is_empty(),
        "scripts/test-tools.txt lists {unused:?}, which no test runs: remove them"
    );
}

#[test]
fn every_listed_program_is_installed() {
    let missing: Vec<String> = tools()
        .into_iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(program, package)| format!("{program} (apt-get install {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "not installed: {}; scripts/setup.sh --test installs every package of scripts/test-tools.txt",
        missing.join(", ")
    );
}
