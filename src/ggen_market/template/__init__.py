"""Templates: YAML front matter + a Jinja2 body rendered in a sandbox, with RDF/SPARQL data."""
