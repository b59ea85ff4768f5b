//! Datapath code generation: headers, map images, clang, object templating.
