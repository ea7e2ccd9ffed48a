"""mlpower.lab"""
