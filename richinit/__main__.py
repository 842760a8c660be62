from richinit.main import entry

entry()
