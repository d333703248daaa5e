fn main() {
    let path = std::env::args().nth(1).expect("path");
    let source = std::fs::read_to_string(&path).expect("read");
    match lastmile_spec::parse("lastmile.yaml", &source) {
        Ok((spec, warnings)) => {
            println!("{spec:#?}");
            print!(
                "{}",
                lastmile_spec::render_warnings("lastmile.yaml", &source, &warnings, false)
            );
        }
        Err(errors) => print!("{}", errors.render(false)),
    }
}
