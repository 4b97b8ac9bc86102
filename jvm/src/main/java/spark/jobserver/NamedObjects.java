package spark.jobserver;

import java.util.List;

/**
 * The context's named objects as a JVM job sees them. The objects themselves (DataFrames, RDDs)
 * are kept by the driver's Python side for Python jobs; a JVM job sees their names only.
 */
public interface NamedObjects {
    /** The names of the context's named objects when the job started ({@code run}); empty in
     * {@code verify}, which runs before the job is accepted. */
    List<String> getNames();
}
