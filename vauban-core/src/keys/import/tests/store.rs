//! A host the store has keeps its keys unless the import replaces them.

use super::{source_copy, source_files, HOSTS};
use crate::keys::tests::{files_of, new_identity};
use crate::keys::{ImportSource, Imported, KeyStore, SkipReason};

#[test]
fn a_host_in_the_store_keeps_its_keys_unless_replaced() {
    let (tmp, dir) = source_copy();
    let read = || Imported::read(ImportSource::Dir(&dir)).unwrap();
    let path = tmp.path().join("keys.age");
    let secret = new_identity();
    let mut store = KeyStore::open(&path, secret.clone()).unwrap();
    // web01 got keys from a build before the import.
    let made = files_of(store.host_keys(HOSTS[0]).unwrap());
    store.save().unwrap();

    let report = store.import(read(), false);
    assert_eq!(report.added, [HOSTS[1]]);
    assert_eq!(
        report.skipped,
        [(HOSTS[0].to_owned(), SkipReason::OtherKeys)]
    );
    assert!(report.replaced.is_empty());
    assert_eq!(files_of(store.get(HOSTS[0]).unwrap()), made, "kept");
    assert!(store.save().unwrap());

    // Once more: nothing changes, both are there already.
    let report = store.import(read(), false);
    assert!(report.added.is_empty() && report.replaced.is_empty());
    assert_eq!(
        report.skipped[1],
        (HOSTS[1].to_owned(), SkipReason::SameKeys)
    );
    assert!(!store.is_changed());

    let report = store.import(read(), true);
    assert_eq!(report.replaced, [HOSTS[0]]);
    assert_eq!(
        report.skipped,
        [(HOSTS[1].to_owned(), SkipReason::SameKeys)],
        "the very same files are not replaced"
    );
    assert!(store.save().unwrap());
    drop(store);
    let store = KeyStore::open(&path, secret).unwrap();
    for host in HOSTS {
        assert_eq!(files_of(store.get(host).unwrap()), source_files(host));
    }
}
