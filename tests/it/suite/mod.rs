mod appserver;
mod cli;
mod engine;
mod recovery;
mod scripted_model;
mod shared;
mod store;
mod unix;
