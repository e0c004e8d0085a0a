//! relentless-core: the domain of Relentless, pure.
//!
//! Types, the plan model, schedule math and the rules of SPEC §5. No I/O, no async,
//! no database, no HTTP: everything here is a function of its inputs, so it is unit- and
//! property-tested on its own. Storage, channels, HTTP and the CLI live in other crates.

pub mod builtin;
pub mod engagement;
pub mod plan;
pub mod rules;
pub mod schedule;
pub mod template;
pub mod twilio;
pub mod types;
pub mod validate;

pub use jiff;
