//! Two processes on one store: the second waits for the first to save and drop
//! it, so neither loses the other's keys. Two handles in two threads stand for
//! the two processes: `flock` locks belong to open files, not to processes.

use std::sync::mpsc;

use super::{fixture, store_copy, HOSTS};
use crate::keys::KeyStore;

#[test]
fn a_second_store_waits_for_the_first_and_keeps_its_keys() {
    let (_dir, path) = store_copy();
    let secret = fixture().secret.clone();
    let mut first = KeyStore::open(&path, secret.clone()).unwrap();

    let (opened, second_opened) = mpsc::channel();
    let second = std::thread::spawn({
        let (path, secret) = (path.clone(), secret.clone());
        move || {
            let mut second = KeyStore::open(&path, secret).unwrap();
            opened.send(()).unwrap();
            // It sees what the first saved, and its own change keeps it.
            let seen: Vec<String> = second.hosts().map(str::to_owned).collect();
            assert!(second.remove(HOSTS[0]));
            assert!(second.save().unwrap());
            seen
        }
    });

    // Generating an RSA key takes long enough for an unlocked open to get through.
    let new_keys = super::files_of(first.host_keys("db-1").unwrap());
    assert!(
        second_opened.try_recv().is_err(),
        "the second store opened while the first held the lock"
    );
    assert!(first.save().unwrap());
    drop(first);

    let seen = second.join().unwrap();
    assert_eq!(seen, ["db-1", "web-1", "web-2"]);
    let store = KeyStore::open(&path, secret).unwrap();
    assert_eq!(store.hosts().collect::<Vec<_>>(), ["db-1", "web-2"]);
    assert_eq!(super::files_of(store.get("db-1").unwrap()), new_keys);
    assert!(path.with_file_name("keys.age.lock").exists());
}
