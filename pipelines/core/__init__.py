"""What every layer shares and nothing below it: settings, limits, the family table, the
request, results and their value types, errors, hub access, lazy loading. Imports no other
package of pipelines/."""
