"""`govshare validate ...`: check identifiers (标识符校验) given on the command line or in a data file.

Mounted by the main CLI as ``app.add_typer(identifier_cmds.app, name="validate")``.
Exit status: 0 when nothing is invalid (warnings allowed), 1 when at least one value is invalid, 2 when the
command itself cannot run (missing column, unsupported file type).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.output import parse_day
from quality.identifier_kinds import IdentifierKind

# The validators and the file readers (numpy, pyarrow) are in cli/identifier_report.py, imported by the
# commands when they run: every `govshare` command loads this module to build its command line.

app = typer.Typer(
    help=(
        "标识符校验 Validate identifiers: 统一社会信用代码 (USCC, GB 32100), 身份证号码 (citizen ID, GB 11643), "
        "组织机构代码 (organisation code, GB 11714), on the command line or in a CSV / Excel / Parquet file. "
        "Exit status 1 when anything is invalid.\n\n"
        "Example: govshare validate uscc 91110000600037341L"
    ),
    no_args_is_help=True,
)

DEFAULT_SHOWN_ROWS = 50

TodayOption = Annotated[
    str | None,
    typer.Option(
        "--today", help="以此日期判断出生日期是否在未来 date that bounds birth dates (YYYY-MM-DD); default today"
    ),
]


@app.command("uscc")
def uscc_command(
    values: Annotated[list[str], typer.Argument(help="一个或多个统一社会信用代码 one or more codes")],
) -> None:
    """校验统一社会信用代码 Check unified social credit codes (18 characters, GB 32100-2015).

    Example: govshare validate uscc 91110000600037341L 91350100M0001TGQXM
    """
    from cli.identifier_report import check_values

    check_values(values, kind=IdentifierKind.USCC, today=None)


@app.command("idcard")
def idcard_command(
    values: Annotated[list[str], typer.Argument(help="一个或多个身份证号码 one or more ID numbers (18 or 15 digits)")],
    today: TodayOption = None,
) -> None:
    """校验居民身份证号码 Check citizen ID numbers (GB 11643-1999; 15-digit numbers are upgraded).

    Example: govshare validate idcard 11010519491231002X 110105491231002
    """
    from cli.identifier_report import check_values

    check_values(values, kind=IdentifierKind.IDCARD, today=parse_day(today))


@app.command("orgcode")
def orgcode_command(
    values: Annotated[list[str], typer.Argument(help="一个或多个组织机构代码 one or more codes (9 characters)")],
) -> None:
    """校验组织机构代码 Check organisation codes (GB 11714, e.g. 60003734-1 or 600037341).

    Example: govshare validate orgcode 60003734-1
    """
    from cli.identifier_report import check_values

    check_values(values, kind=IdentifierKind.ORGCODE, today=None)


@app.command("file")
def file_command(
    path: Annotated[Path, typer.Argument(help="CSV, Excel (.xlsx) or Parquet file", exists=True, dir_okay=False)],
    column: Annotated[str, typer.Option("--column", "-c", help="列名 column header to check")],
    kind: Annotated[IdentifierKind, typer.Option("--kind", "-k", help="标识符类型 identifier kind")],
    sheet: Annotated[str | None, typer.Option("--sheet", help="Excel 工作表 sheet; default the first")] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="CSV 编码 encoding, e.g. gbk")] = "utf-8",
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=0, help="最多显示的问题行数 problem rows to list")
    ] = DEFAULT_SHOWN_ROWS,
    today: TodayOption = None,
) -> None:
    """校验文件中的一列 Check one column of a CSV, Excel (.xlsx) or Parquet file, streaming in batches.

    Lists the rows that are not valid, up to --max-rows, then a summary line.
    Row numbers count data rows from 1 (the header is not counted); empty cells are counted, not judged.

    Example: govshare validate file enterprises.xlsx --column 统一社会信用代码 --kind uscc
    """
    from cli.identifier_report import check_file

    check_file(path, column=column, kind=kind, sheet=sheet, encoding=encoding, max_rows=max_rows,
               today=parse_day(today))
