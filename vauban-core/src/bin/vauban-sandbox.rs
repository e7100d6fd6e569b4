//! `vauban-sandbox`: the sandbox helper alone, for programs that embed
//! vauban-core but cannot call `run_helper_if_asked` first thing in their own
//! `main`: point `VAUBAN_HELPER` (or `Helper::at`) at it.

fn main() {
    vauban_core::sandbox::run_helper_if_asked();
    eprintln!(
        "vauban-sandbox is vauban's sandbox helper: vauban starts it itself; \
         point VAUBAN_HELPER at it from a program that embeds vauban-core"
    );
    std::process::exit(2);
}
