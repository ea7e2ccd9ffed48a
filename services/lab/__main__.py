from mlpower.lab.cli import app

app()
