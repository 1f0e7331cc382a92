//! Integration tests: the real binary, real HTTP, real sled files in temp dirs.

mod assign;
mod durability;
mod errors;
mod events;
mod export;
mod failsafe;
mod helpers;
mod reload;
mod statistics;
mod validate;
