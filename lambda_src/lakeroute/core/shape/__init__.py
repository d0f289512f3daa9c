"""Shaping: a route's result made to fit its Iceberg table.

``types`` (Arrow result types mapped to Iceberg types, safe casts), ``policy`` (schema policy:
evolve, strict, rescue; rows cast), ``table_schema`` (schemas, partition specs, properties,
type promotions), ``schema_plan`` (declared tables against the catalog: safe and unsafe
changes), ``tables`` (creating and evolving declared tables), ``expectations`` (checks on a
file's rows before they commit).
"""
