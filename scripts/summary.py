"""Prints a run report (one table's, or a `sync` report's tables) and a dataset schema as small tables
(standard library only)."""
import json
import sys

report = json.load(open(sys.argv[1]))
schema = json.load(open(sys.argv[2]))

if "tables" in report:
    print(f"\n{'table':22}  {'status':8}  {'partitions':>10}  {'rows':>7}  {'bytes':>9}")
    for name, t in report["tables"].items():
        print(f"{name:22}  {t['status']:8}  {len(t['partitions']):>10}  {t['rows']:>7}  {t['bytes_written']:>9}")
    print(f"\nsync: status {report['status']} (exit {report['exit_code']}), {report['requests']} requests")
    report = report["tables"]["call_outcomes"]
    print("\ncall_outcomes:")

print(f"\n{'campaign':>8}  {'date':10}  {'status':9}  {'rows':>5}  file")
for p in report["partitions"]:
    print(f"{p['campaign_id']:>8}  {p['date']:10}  {p['status']:9}  {p['rows']:>5}  {p['file'] or ''}")
print(
    f"\nstatus {report['status']} (exit {report['exit_code']}): {report['rows']} rows, "
    f"{report['pages']} pages, {report['requests']} requests, {report['retries']} retries, "
    f"{report['bytes_written']} bytes written, {report['files_rewritten']} files rewritten"
)
print(f"\nschema version {schema['version']}: {len(schema['columns'])} columns")
for c in schema["columns"]:
    renamed = "" if c["name"] == c["source_key"] else f"  (from key {c['source_key']!r})"
    print(f"  {c['name']:60} {c['type']}{renamed}")
