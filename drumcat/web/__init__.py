"""`drumcat serve`: the local review page. Its templates and static files ship inside the package."""
