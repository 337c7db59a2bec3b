"""Device reports: the JSON Schemas, strict loading, and validation with precise, printable errors.

Typical use::

    from pyagent.report import load_report, ReportInvalidError

    report = load_report("report.json")      # or load_report("-") for stdin
    # raises InvalidInputError (exit 2): unreadable, too big, not UTF-8, bad JSON, duplicate key,
    #   not an object
    # raises ReportInvalidError (an InvalidInputError) with .issues / .lines() when the schema is not matched
"""

from pyagent.report.issues import SchemaIssue, json_path
from pyagent.report.load import (
    STDIN,
    ReportInvalidError,
    check_report,
    load_report,
    max_report_bytes,
    parse_report,
    read_report_bytes,
    source_name,
)
from pyagent.report.schemas import DECISION_SCHEMA, REPORT_SCHEMA, SchemaFileError, find_schema, load_schema
from pyagent.report.validate import (
    DecisionValidator,
    ReportValidator,
    SchemaValidator,
    ValidationResult,
    decision_validator,
    report_validator,
)

__all__ = [
    "DECISION_SCHEMA",
    "REPORT_SCHEMA",
    "STDIN",
    "DecisionValidator",
    "ReportInvalidError",
    "ReportValidator",
    "SchemaFileError",
    "SchemaIssue",
    "SchemaValidator",
    "ValidationResult",
    "check_report",
    "decision_validator",
    "find_schema",
    "json_path",
    "load_report",
    "load_schema",
    "max_report_bytes",
    "parse_report",
    "read_report_bytes",
    "report_validator",
    "source_name",
]
