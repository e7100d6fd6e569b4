//! The coordinator (placeholder, filled below).
