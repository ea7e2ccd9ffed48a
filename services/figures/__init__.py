"""mlpower.figures"""
