//! The HTTP stories (tests/stories/) against a real SQLite database.

mod common;
mod stories;

const BACKEND: common::Backend = common::Backend::Sqlite;
