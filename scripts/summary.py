"""Prints a run report and the dataset schema as two small tables (standard library only)."""
import json
import sys

report = json.load(open(sys.argv[1]))
schema = json.load(open(sys.argv[2]))

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
