fn main() {
    std::process::exit(stack::run());
}
