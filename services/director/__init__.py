"""mlpower.director"""
