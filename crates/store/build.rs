// `sqlx::migrate!` embeds the migration files at compile time, but cargo only knows to
// rebuild when a Rust source changes: without this, a new migration file is left out of
// the binary until something else in the crate is edited.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
