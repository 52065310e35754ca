"""What every console page uses: logins (auth), FastAPI dependencies (deps) and
rendering (render). This package imports no page, so pages can import it while the
console package (which assembles the pages) imports both."""
