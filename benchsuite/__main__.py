from benchsuite.cli import app

app(prog_name="benchsuite")
