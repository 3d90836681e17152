"""``python -m clients``: stream a completion to the terminal over SSE or WebSocket."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .api import TRANSPORTS, Client, connect
from .base import Stream
from .errors import ClientError
from .net import DEFAULT_URL
from .printer import Printer
from .session import ReconnectPolicy

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
QUIT_COMMANDS = ("/quit", "/exit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clients",
        description=(
            "Stream one chat completion from a twinstream server and print the text as it "
            "arrives. Without PROMPT, chat: read prompts from stdin, one per line, and answer "
            "each in turn, keeping the conversation (each answer is sent back with the next "
            "question; over a single connection with --transport ws). In a terminal, /history "
            "shows the conversation and /new starts a new one. A dropped connection is resumed "
            "automatically. Errors print one line on stderr and exit with status 1."
        ),
        epilog=(
            'examples:  python -m clients "Why is the sky blue?"\n'
            '           python -m clients "Hi" --transport ws --json\n'
            '           python -m clients "Name a colour" --temperature 0.2 --seed 7 --stop .\n'
            "           printf 'one\\ntwo\\n' | python -m clients --transport ws --stats"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "prompt", nargs="?", help="the prompt, in quotes; omit it for a chat (interactive mode)"
    )
    parser.add_argument(
        "--transport",
        "-t",
        choices=TRANSPORTS,
        default="sse",
        help="sse (GET /sse, Server-Sent Events) or ws (GET /ws, WebSocket); default: sse",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("TWINSTREAM_URL") or DEFAULT_URL,
        help=f"server base URL (default: $TWINSTREAM_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--max-tokens", type=_positive_int, help="cut the completion after N tokens"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TWINSTREAM_API_KEY") or None,
        help="API key for a server that needs one (default: $TWINSTREAM_API_KEY; "
        "prefer the variable: a flag shows in the process list)",
    )
    parser.add_argument(
        "--system", metavar="TEXT", help="a system message that starts the conversation"
    )
    parser.add_argument(
        "--temperature", type=_float_between(0, 2), help="sampling temperature, 0 to 2"
    )
    parser.add_argument("--top-p", type=_float_between(0, 1), help="nucleus sampling, 0 to 1")
    parser.add_argument("--seed", type=_integer, help="a seed: the same seed, the same reply")
    parser.add_argument(
        "--stop",
        action="append",
        metavar="TEXT",
        help="end the reply before this text (repeat for up to 4)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print each event as one JSON line instead of text"
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="at the end, print on stderr: time to first token, tokens/s, events, "
        "bytes received and reconnects",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting after this long (default: 10)",
    )
    parser.add_argument(
        "--read-timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="treat the connection as dead after this long without data (default: 30)",
    )
    parser.add_argument(
        "--retries",
        type=_non_negative_int,
        default=5,
        metavar="N",
        help="reconnect attempts after a drop before giving up; 0 turns resuming off (default: 5)",
    )
    return parser


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(text)


def _float_between(low: float, high: float) -> Callable[[str], float]:
    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}")
        return value

    return check


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The Chat Completions parameters given on the command line."""
    params = {"temperature": args.temperature, "top_p": args.top_p, "seed": args.seed}
    if args.stop:
        params["stop"] = args.stop
    return {key: value for key, value in params.items() if value is not None}


def run_turn(
    client: Client, messages: list[dict[str, Any]], args: argparse.Namespace, printer: Printer
) -> Stream:
    """One completion of the conversation so far. Ctrl-C cancels the stream,
    then re-raises."""
    stream = client.stream(messages=messages, max_tokens=args.max_tokens, **parameters(args))
    try:
        printer.run(stream)
    except KeyboardInterrupt:
        stream.cancel()
        raise
    finally:
        stream.close()
        if args.stats:
            print(stream.stats.summary(), file=sys.stderr, flush=True)
    return stream


def _system(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [{"role": "system", "content": args.system}] if args.system else []


def _show_history(history: list[dict[str, Any]]) -> None:
    if not history:
        print("(no conversation yet)", file=sys.stderr)
    for message in history:
        print(f"[{message['role']}] {message.get('content') or ''}", file=sys.stderr)
    sys.stderr.flush()


def interactive(client: Client, args: argparse.Namespace, printer: Printer) -> int:
    """Turn after turn from stdin until EOF or /quit, keeping the conversation:
    each answer goes back to the server with the next question. A turn that
    fails or is stopped is left out of it. On a terminal, an error or Ctrl-C
    ends only the turn; from a pipe, an error ends the session."""
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        print(
            "error: no PROMPT and no standard input to read prompts from; "
            'pass one, e.g. python3 -m clients "Hi"',
            file=sys.stderr,
        )
        return EXIT_USAGE
    tty = stdin.isatty()
    if tty:
        print(
            f"twinstream chat over {args.transport} at {args.url}; empty line skips, "
            "/history shows the conversation, /new starts over, /quit or Ctrl-D ends, "
            "Ctrl-C stops an answer",
            file=sys.stderr,
        )
    start = _system(args)
    history = list(start)
    status = EXIT_OK
    turns = 0
    while True:
        if tty:
            print("> ", end="", file=sys.stderr, flush=True)
        line = stdin.readline()
        if not line:
            if tty:
                print(file=sys.stderr)
            elif turns == 0:
                print(
                    "error: no prompt: standard input was empty; pass a PROMPT or pipe "
                    "prompts, one per line",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            return status
        prompt = line.rstrip("\r\n")  # the rest is what the user typed, spaces and all
        command = prompt.strip()
        if not command:
            continue
        if command in QUIT_COMMANDS:
            return status
        if command == "/history":
            _show_history(history)
            continue
        if command == "/new":
            history = list(start)
            print("(new conversation)", file=sys.stderr, flush=True)
            continue
        turns += 1
        asked = history + [{"role": "user", "content": prompt}]
        try:
            stream = run_turn(client, asked, args, printer)
        except KeyboardInterrupt:
            if not tty:
                raise
            print("(stopped)", file=sys.stderr, flush=True)
        except ClientError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            if not tty:
                return EXIT_ERROR
            status = EXIT_ERROR
        else:
            history = asked + [stream.message()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        words = [word for word in extra if not word.startswith("-")]
        if args.prompt is not None and words and len(words) == len(extra):
            together = " ".join([args.prompt, *words])
            parser.error(
                f"the prompt must be one argument: put it in quotes, e.g. "
                f'python3 -m clients "{together}"'
            )
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # a terminal that cannot show "café"
    printer = Printer(sys.stdout, args.json)
    try:
        client = connect(
            args.transport,
            args.url,
            connect_timeout=args.connect_timeout,
            read_timeout=args.read_timeout,
            reconnect=ReconnectPolicy(max_attempts=args.retries),
            api_key=args.api_key,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with client:
            if args.prompt is not None:
                if not args.prompt.strip():
                    print("error: the prompt is empty", file=sys.stderr)
                    return EXIT_USAGE
                asked = _system(args) + [{"role": "user", "content": args.prompt}]
                run_turn(client, asked, args, printer)
                return EXIT_OK
            return interactive(client, args, printer)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (e.g. `| head`); keep Python from complaining at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
