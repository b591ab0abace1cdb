from tidings.cli import build_parser


def test_serve_takes_settings_flags() -> None:
    args = build_parser().parse_args(["serve", "--port", "9000", "--db", "sqlite:///x.db"])
    assert args.command == "serve"
    assert args.port == "9000"
