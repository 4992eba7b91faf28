"""``batchkit estimate``: the prompt tokens, the output cap and what a batch may cost.

The cost is a range: from the prompt alone (the answers are free, or empty) to the prompt plus
every request's full output cap, at the batch discount.  No price table is built in (prices
change, and differ by provider): give them as options or as a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import orjson

from batchkit.cli.common import echo_json, format_option, handle_errors
from batchkit.cli.options import encoding_option, endpoint_option
from batchkit.cli.report import printable, tokens_line
from batchkit.errors import UsageError
from batchkit.token_files import FileTokens, count_file_tokens

#: Prices are in US dollars per million tokens, as providers list them.
PER_TOKENS = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per million tokens, before the batch discount."""

    input: float
    output: float


@dataclass(frozen=True)
class Cost:
    """What a file may cost: ``low`` (prompt only) to ``high`` (prompt plus the full output
    cap; ``None`` when some request sets no cap, so there is no upper bound)."""

    price: Price
    discount: float
    low: float
    high: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": "USD",
            "input_price": self.price.input,
            "output_price": self.price.output,
            "discount": self.discount,
            "min": self.low,
            "max": self.high,
        }


def cost_of(tokens: FileTokens, price: Price, discount: float) -> Cost:
    """The cost range of ``tokens`` at ``price`` less ``discount`` (0.5: half price)."""
    share = (1 - discount) / PER_TOKENS
    low = tokens.prompt * price.input * share
    high = None if tokens.max_output is None else low + tokens.max_output * price.output * share
    return Cost(price, discount, low, high)


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@endpoint_option
@encoding_option
@click.option(
    "--input-price", type=click.FloatRange(min=0), help="USD per 1M prompt tokens (list price)."
)
@click.option(
    "--output-price", type=click.FloatRange(min=0), help="USD per 1M output tokens (list price)."
)
@click.option(
    "--prices",
    "prices_file",
    type=click.Path(dir_okay=False),
    help='A JSON file of list prices by model: {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}.',
)
@click.option(
    "--discount",
    type=click.FloatRange(min=0, max=1),
    default=0.5,
    show_default=True,
    help="The batch discount off the list prices (0.5: half price).",
)
@format_option("text", "json")
@handle_errors
def estimate(
    paths: tuple[str, ...],
    endpoint: str | None,
    encoding: str | None,
    input_price: float | None,
    output_price: float | None,
    prices_file: str | None,
    discount: float,
    output_format: str,
) -> None:
    """Count the prompt tokens and output cap of batch FILEs and, given prices, what they
    may cost: from the prompt alone to the prompt plus every request's full output cap.

    Counts are exact and offline for OpenAI's models (tiktoken's encodings ship with
    batchkit); other models' counts are estimates (or choose --encoding).  Lines that are
    not requests are skipped: `batchkit validate` judges them.
    """
    prices = _prices(input_price, output_price, prices_file)
    if "-" in paths:
        raise UsageError("estimate reads files by path, not - (stdin)")
    entries = []
    for path in paths:
        tokens = count_file_tokens(path, endpoint=endpoint, encoding=encoding)
        price = _price_for(prices, tokens.model, prices_file)
        cost = None if price is None else cost_of(tokens, price, discount)
        entries.append((path, tokens, cost))
    if output_format == "json":
        echo_json(_document(entries))
        return
    for path, tokens, cost in entries:
        click.echo(tokens_line(path, tokens))
        if cost is not None:
            click.echo(printable(f"{path}: cost: {_range(cost)}"))


def _prices(
    input_price: float | None, output_price: float | None, prices_file: str | None
) -> dict[str, Price] | Price | None:
    """The prices given: one for every file (the options), by model (a file), or none."""
    if prices_file is not None:
        if input_price is not None or output_price is not None:
            raise UsageError("give either --prices FILE or --input-price and --output-price")
        return _read_prices(prices_file)
    if (input_price is None) != (output_price is None):
        raise UsageError("--input-price and --output-price go together (USD per 1M tokens)")
    if input_price is None or output_price is None:
        return None
    return Price(input_price, output_price)


def _read_prices(path: str) -> dict[str, Price]:
    try:
        document = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot be read ({error.strerror})") from None
    except orjson.JSONDecodeError as error:
        raise UsageError(
            f'{path}: not JSON ({error}); write {{"MODEL": {{"input": USD, "output": USD}}}}'
        ) from None
    if not isinstance(document, dict):
        raise UsageError(f'{path}: expected {{"MODEL": {{"input": USD, "output": USD}}}}')
    return {model: _entry(path, model, entry) for model, entry in document.items()}


def _entry(path: str, model: str, entry: Any) -> Price:
    """One model's prices: two numbers, USD per 1M tokens, not negative."""
    values = [entry.get(key) if isinstance(entry, dict) else None for key in ("input", "output")]
    if not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
        for value in values
    ):
        raise UsageError(
            f"{path}: {model!r} needs input and output prices (USD per 1M tokens, >= 0), "
            f"got {orjson.dumps(entry).decode()}"
        )
    return Price(float(values[0]), float(values[1]))  # type: ignore[arg-type]


def _price_for(
    prices: dict[str, Price] | Price | None, model: str | None, prices_file: str | None
) -> Price | None:
    """The file's price: the options', or its model's (as written, then without a provider
    prefix: ``openai/gpt-4o-mini`` finds ``gpt-4o-mini``)."""
    if prices is None or isinstance(prices, Price):
        return prices
    for name in (model, (model or "").rsplit("/", 1)[-1]):
        if name and name in prices:
            return prices[name]
    raise UsageError(f"{prices_file}: no price for model {model!r}; add it to the file")


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.6f}"


def _range(cost: Cost) -> str:
    off = f"at {cost.discount:.0%} off the list prices"
    if cost.high is None:
        return (
            f"{_usd(cost.low)} for the prompts, {off}; no upper bound: some requests set no "
            "output cap (max_tokens)"
        )
    return f"{_usd(cost.low)} (prompts only) to {_usd(cost.high)} (full output cap), {off}"


def _document(entries: list[tuple[str, FileTokens, Cost | None]]) -> dict[str, Any]:
    files = [
        {
            "path": path,
            "model": tokens.model,
            "requests": tokens.requests,
            "tokens": tokens.to_dict(),
            "cost": None if cost is None else cost.to_dict(),
        }
        for path, tokens, cost in entries
    ]
    costs = [cost for _, _, cost in entries]
    caps = [tokens.max_output for _, tokens, _ in entries]
    total: dict[str, Any] = {
        "prompt": sum(tokens.prompt for _, tokens, _ in entries),
        "max_output": None if None in caps else sum(cap or 0 for cap in caps),
        "cost": None,
    }
    if all(cost is not None for cost in costs):
        highs = [cost.high for cost in costs if cost is not None]
        total["cost"] = {
            "min": sum(cost.low for cost in costs if cost is not None),
            "max": None if None in highs else sum(high or 0 for high in highs),
        }
    return {"files": files, "total": total}
